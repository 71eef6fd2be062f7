"""Running a command on this machine and taking its exit code and output: for the adapters that
drive a local program (a router's test or reload command, a tool beside it), and for the user's
commands on the CI runner (hooks, the smoke command)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path

RUN_TIMEOUT = 60.0


def run_argv(argv: list[str], *, cwd: str | Path | None = None,
             timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    """``argv`` as it is, no shell: exit code and output, stdout then stderr (127 when it cannot
    run or runs past ``timeout``)."""
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def on_runner(command: str, env: dict[str, str], timeout: float, cwd: str) -> tuple[int, str]:
    """``/bin/sh -c command`` on the runner with ``env`` added: (exit code, stdout + stderr).

    The command runs in a process group of its own: on timeout, or when bgci is interrupted (a CI
    that cancels the job), the whole group (the shell and everything it started) is killed, on
    Linux and macOS alike. Its output goes to a file, not a pipe: a background child that keeps
    the pipe open cannot hang bgci.
    """
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(["/bin/sh", "-c", command], env={**os.environ, **env}, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=os.setpgrp)
        try:
            code = proc.wait(timeout=timeout)
            note = ""
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            code, note = 124, f"\n(timed out after {timeout:.0f}s)"
        except BaseException:  # interrupted: take the command down with bgci, then go on stopping
            _kill_group(proc.pid)
            proc.wait()
            raise
        out.seek(0)
        return code, out.read().decode("utf-8", "replace") + note


def _kill_group(pgid: int) -> None:
    """SIGKILL the command's process group: the shell and all it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
