"""Detached process groups: started in a session of their own, found by pidfile, stopped as a group.

A process bgci starts here must outlive bgci (the CI step ends, the app keeps serving), so it is
spawned into a new session (no SIGHUP when the runner's terminal or job goes away) and nobody waits
for it. The pidfile records the kernel's start time of the process as well as its pid: a pid that
the kernel has since given to an unrelated process is never taken for ours, and never signalled.
Linux only (``/proc``), like the rest of the process platform.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgci.atomic import write_atomic

# `sh -c` changes into the working directory, then becomes the command (exec): posix_spawn has no
# chdir of its own, and the pid we record must be the command's.
_IN_DIR = 'cd "$1" || exit 127; shift; exec "$@"'


@dataclass(frozen=True)
class PidRecord:
    """A process bgci started: pid (= its process group and session id) and kernel start time."""

    pid: int
    start_ticks: int
    started_at: float
    facts: dict[str, Any] = field(default_factory=dict)  # what the starter wants to find again

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "start_ticks": self.start_ticks,
                           "started_at": self.started_at, "facts": self.facts}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> PidRecord | None:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), int(data["start_ticks"]), float(data["started_at"]),
                       dict(data.get("facts") or {}))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class ProcStat:
    state: str
    pgrp: int
    session: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """The kernel's view of ``pid`` (None when there is no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    rest = text[text.rfind(")") + 2:].split()
    try:
        return ProcStat(rest[0], int(rest[2]), int(rest[3]), int(rest[19]))
    except (IndexError, ValueError):
        return None


def spawn(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path,
          facts: Mapping[str, Any] | None = None) -> PidRecord:
    """Start ``argv`` in ``cwd`` as the leader of a new session, output appended to ``log_path``.

    Not a ``subprocess.Popen``: nothing in bgci waits for it, and it keeps running after bgci exits.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid = os.posix_spawn(
        "/bin/sh", ["/bin/sh", "-c", _IN_DIR, "sh", str(cwd), *argv], dict(env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        setsigmask=(),
        # Python ignores SIGPIPE and SIGXFSZ for itself; the child gets the defaults back
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM),
    )
    stat = proc_stat(pid)
    return PidRecord(pid, stat.start_ticks if stat else -1, time.time(), dict(facts or {}))


def alive(record: PidRecord) -> bool:
    """Whether the process ``record`` names still runs (and is the same process, not a reused pid)."""
    stat = proc_stat(record.pid)
    if stat is None or stat.start_ticks != record.start_ticks:
        return False
    if stat.state in ("Z", "X"):
        _reap(record.pid)
        return False
    return True


def members(record: PidRecord) -> list[int]:
    """Live processes of the record's session and process group (its children included).

    Empty when the leader's pid now belongs to someone else: then the group is not ours to signal.
    """
    leader = proc_stat(record.pid)
    if leader is not None and leader.start_ticks != record.start_ticks:
        return []
    # While any process is in session/group N, the kernel does not hand out pid N again: whatever
    # is in session N now was started by our leader.
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if (stat is not None and stat.pgrp == record.pid and stat.session == record.pid
                    and stat.state not in ("Z", "X")):
                found.append(int(entry.name))
    return found


def terminate(record: PidRecord, grace: float, stop_signal: int = signal.SIGTERM) -> str:
    """``stop_signal`` to the whole group, up to ``grace`` s to exit, then SIGKILL to the group.

    Returns what happened, for the log: "not running", "stopped" or "killed".
    """
    if not members(record):
        _reap(record.pid)
        return "not running"
    _signal_group(record.pid, stop_signal)
    if _wait_gone(record, grace):
        return "stopped"
    _signal_group(record.pid, signal.SIGKILL)
    _wait_gone(record, 10.0)
    return "killed"


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_gone(record: PidRecord, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if not members(record):
            _reap(record.pid, wait=1.0)
            return True
        _reap(record.pid)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collect the exit status if ``pid`` is our own child (bgci started it in this process).

    ``wait``: a multi-threaded leader shows as a zombie while its other threads still exit, and
    cannot be collected until they have; give it that long.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            collected, status = os.waitpid(pid, os.WNOHANG)
            if collected != 0:
                _EXITED[pid] = os.waitstatus_to_exitcode(status)
                return
        except OSError:  # ChildProcessError: not our child (or already collected)
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.01)


# exit codes of the children this process collected (a colour started and crashed while this
# bgci waited for it to become healthy): pid -> exit code (negative: killed by that signal)
_EXITED: dict[int, int] = {}


def exit_code(record: PidRecord) -> int | None:
    """How the process ``record`` names ended, when this bgci started it and it has ended (None:
    it runs, or another process started it and its exit code is not ours to know)."""
    if alive(record):
        return None
    _reap(record.pid)
    return _EXITED.get(record.pid)


def read_record(path: Path) -> PidRecord | None:
    try:
        return PidRecord.from_json(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def write_record(path: Path, record: PidRecord) -> None:
    write_atomic(path, record.to_json().encode())


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def follow(path: Path, *, tail: int | None, keep_going: Callable[[], bool],
           poll: float = 0.25) -> Iterator[str]:
    """A log file's text: its last ``tail`` lines (None: all of it), then, while
    ``keep_going()``, what is appended to it, and to the file that replaces it (a new start)."""
    start = _offset_of_last_lines(path, tail)
    while True:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            handle.seek(start)
            inode = os.fstat(handle.fileno()).st_ino
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            while True:
                data = handle.read(65536)
                if data:
                    yield decoder.decode(data)
                    continue
                if not keep_going():
                    return
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_ino != inode:
                        break  # replaced by a new start: read the new file from its beginning
                time.sleep(poll)
        start = 0


def _offset_of_last_lines(path: Path, lines: int | None, window: int = 4 * 1024 * 1024) -> int:
    """Where the last ``lines`` lines of ``path`` start (0: all of it, or no such file)."""
    if lines is None:
        return 0
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            begin = max(0, size - window)
            handle.seek(begin)
            data = handle.read()
    except OSError:
        return 0
    if lines <= 0:
        return size
    body = data[:-1] if data.endswith(b"\n") else data
    at = len(body)
    for _ in range(lines):
        at = body.rfind(b"\n", 0, at)
        if at < 0:
            return begin
    return begin + at + 1
