"""A fleet: one app on several Docker hosts (``platform.fleet``), each host a whole blue-green
deployment of its own (both colours, its own router, state and lock) behind a load balancer that
is the user's (docs/fleet.md).

A stage on a fleet is the same stage run once per host, in parallel, by bgci itself: one child
process per host, with ``DOCKER_HOST`` set to that host and its reports in
``<reports>/hosts/<host>/``, so each host runs exactly the code a single host runs. Around them:

- before anything changes, every host must answer (else exit 3, nothing changed anywhere) and the
  fleet lock, held on the first host, must be free (two runners never interleave host by host);
- a switch is all or nothing: when any host fails to switch or to confirm, every host that did
  switch is rolled back (exit 1); a host that cannot be put back is named (exit 3);
- the stage's own result says what every host answered, and a colour only when all agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from bgci.command_line import command_index
from bgci.errors import ConfigError, InfraError
from bgci.log import Log
from bgci.model import Check, StageResult
from bgci.ports import StateStore

# stages that change no host: no fleet lock, no reachability gate beyond the stage's own
READ_ONLY = ("status", "lock")
# exit codes, the most serious first: the fleet's code when hosts disagree
SEVERITY = (3, 5, 4, 2, 1)
_STATUS = {1: "failed", 4: "refused"}
# what makes a child think it runs in a CI job: it would write the job's outputs and annotations
# a second time (the fleet's own result does that once)
_CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY",
                 "GITLAB_CI", "JENKINS_URL", "BUILD_URL")


@dataclass
class HostRun:
    """What one host's stage did: its exit code, its JSON report (None: it wrote none), and the
    lines it printed."""

    host: str
    code: int
    result: dict[str, Any] | None
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.result and self.result.get("message"):
            return str(self.result["message"])
        return self.lines[-1] if self.lines else f"exit {self.code}, no report"


class Runner(Protocol):
    """Runs bgci's command line ``argv`` against one host; ``echo`` gets each line it prints."""

    def __call__(self, host: str, argv: list[str], env: Mapping[str, str],
                 echo: Callable[[str], None]) -> int: ...


def label(host: str) -> str:
    """A host's short name, as logs and report directories show it: ``app-1.example.com``."""
    parsed = urlparse(host)
    name = parsed.hostname or host
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}:{parsed.port}" if parsed.port else name)


def check_hosts(hosts: Sequence[str], at: str) -> None:
    """``platform.fleet``: Docker engine URLs a runner reaches (ssh:// or tcp://), each once."""
    for host in hosts:
        if urlparse(host).scheme not in ("ssh", "tcp") or not urlparse(host).hostname:
            raise ConfigError(f"{at}: platform.fleet entry {host!r} is not a Docker host URL",
                              "write each host as ssh://user@host (or tcp://host:2376)")
    labels = [label(host) for host in hosts]
    twice = sorted({name for name in labels if labels.count(name) > 1})
    if twice:
        raise ConfigError(f"{at}: platform.fleet names {', '.join(twice)} more than once",
                          "each host once: a host runs one deployment of the app")


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line for one host: the same, without ``--reports`` and ``--json`` (the
    fleet sets both per host), and with the fleet turned off (the child is one host)."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--reports":
            skip = True
            continue
        if word.startswith("--reports=") or word == "--json":
            continue
        out.append(word)
    return [*out, "--set", "platform.fleet=[]"]


def child_env(environ: Mapping[str, str], host: str, reports: Path) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k not in _CI_VARIABLES and k != "BGCI_JSON"}
    env.update({"DOCKER_HOST": host, "BGCI_REPORTS": str(reports), "BGCI_NOTIFY_URL": "",
                "BGCI_PLATFORM_FLEET": "[]"})
    return env


def run_bgci(host: str, argv: list[str], env: Mapping[str, str],
             echo: Callable[[str], None]) -> int:
    """bgci itself in a child process: its output goes to ``echo`` a line at a time."""
    proc = subprocess.Popen([sys.executable, "-m", "bgci", *argv], env=dict(env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        echo(line.rstrip("\n"))
    return proc.wait()


@dataclass
class Fleet:
    """The hosts of ``platform.fleet`` and how to run a stage on each."""

    hosts: list[str]
    reports: Path
    log: Log
    runner: Runner = run_bgci
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _print: threading.Lock = field(default_factory=threading.Lock)

    def run(self, argv: Sequence[str], hosts: Sequence[str] | None = None,
            stage: str = "") -> dict[str, HostRun]:
        """``argv`` (a bgci command line) on every host in parallel: host -> what it did."""
        chosen = list(hosts if hosts is not None else self.hosts)
        with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
            runs = list(pool.map(lambda host: self._one(host, list(argv), stage), chosen))
        return dict(zip(chosen, runs, strict=True))

    def _one(self, host: str, argv: list[str], stage: str) -> HostRun:
        reports = self.reports / "hosts" / label(host)
        reports.mkdir(parents=True, exist_ok=True)
        report = reports / f"{stage}.json" if stage else None
        if report is not None and report.exists():
            report.unlink()  # a report from an earlier run must never be read as this one's
        run = HostRun(host, 0, None)

        def echo(line: str) -> None:
            run.lines.append(line)
            with self._print:
                self.log.info(f"[{label(host)}] {line}")

        started = time.monotonic()
        run.code = self.runner(host, child_argv(argv), child_env(self.environ, host, reports),
                               echo)
        run.seconds = time.monotonic() - started
        if report is not None and report.exists():
            try:
                run.result = json.loads(report.read_text(encoding="utf-8"))
            except ValueError:
                run.result = None
        return run


def worst(codes: Sequence[int]) -> int:
    """The fleet's exit code: the most serious of its hosts' (0 when all passed)."""
    return next((code for code in SEVERITY if code in codes), max(codes, default=0))


def agreed(runs: Mapping[str, HostRun], key: str) -> Any:
    """A fact every host's report gives the same value (None when any differs or is missing)."""
    values = {str(run.result.get(key)) if run.result else None for run in runs.values()}
    if len(values) != 1 or None in values or "None" in values:
        return None
    [value] = values
    return value


def fill(result: StageResult, runs: Mapping[str, HostRun]) -> None:
    """The fleet's result from its hosts': one check per host, each host's facts under
    ``extra.hosts``, a fact at the top only when every host reports the same."""
    for host, run in runs.items():
        result.add(Check(f"{label(host)}: {result.stage}",
                         "passed" if run.code == 0 else "failed", run.seconds,
                         "" if run.code == 0 else f"exit {run.code}: {run.message}",
                         "\n".join(run.lines[-200:])))
    result.extra["hosts"] = {
        label(host): {"host": host, "exit_code": run.code, "seconds": round(run.seconds, 3),
                      **{key: (run.result or {}).get(key) for key in (
                          "status", "message", "changed", "live_color", "idle_color", "color",
                          "image", "digest", "live_url", "preview_url")}}
        for host, run in runs.items()}
    live, idle = agreed(runs, "live_color"), agreed(runs, "idle_color")
    result.live_colour = live if live in ("blue", "green") else None
    result.idle_colour = idle if idle in ("blue", "green") else None
    result.observed = result.live_colour is not None
    colour = agreed(runs, "color")
    result.colour = colour if colour in ("blue", "green") else None
    result.image, result.digest = agreed(runs, "image") or "", agreed(runs, "digest") or ""
    result.changed = any(run.result and run.result.get("changed") for run in runs.values())
    code = worst([run.code for run in runs.values()])
    if code:
        failed = [f"{label(host)} (exit {run.code}: {run.message})"
                  for host, run in runs.items() if run.code]
        result.exit_code, result.status = code, _STATUS.get(code, "error")  # type: ignore[assignment]
        result.message = f"{result.stage} failed on {len(failed)} of {len(runs)} hosts: " + \
            "; ".join(failed)
    else:
        result.message = f"{result.stage} passed on all {len(runs)} hosts" + (
            f"; live: {result.live_colour}" if result.live_colour else "; hosts differ on "
            "the live colour (`bgci status` shows each)" if result.stage != "build" else "")


def unreachable(hosts: Sequence[str], reach: Callable[[str], str | None]) -> dict[str, str]:
    """host -> why it did not answer, for every host that did not (asked in parallel)."""
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        answers = list(pool.map(reach, hosts))
    return {host: why for host, why in zip(hosts, answers, strict=True) if why is not None}


def fleet_lock_command(store: StateStore, where: str, release: bool, result: StageResult,
                       log: Log) -> None:
    """``bgci lock status|release`` on a fleet: also the fleet's own lock, which a stage that
    changes hosts holds on the first host (``where``) for the whole run, after each host's."""
    held = store.current_lock()
    result.extra["fleet_lock"] = held.to_dict() if held else None
    if held is None:
        said = "free"
    elif release:
        store.unlock(held)
        result.changed = True
        said = f"released (held by {held.describe()})"
    else:
        said = f"held by {held.describe()}"
    log.info(f"the fleet lock (on {where}): {said}")
    result.message += f"; the fleet lock (on {where}): {said}"


def command_at(argv: Sequence[str]) -> int:
    """Where the command is in a bgci command line (global options and their values first)."""
    i = command_index(argv)
    if i is not None:
        return i
    raise ConfigError("no command in the command line", "e.g. bgci switch")


def run_stage(fleet: Fleet, stage: str, argv: Sequence[str], result: StageResult,
              reach: Callable[[str], str | None],
              fleet_lock: Callable[[], AbstractContextManager[Any]]) -> None:
    """``stage`` (the command line ``argv``) on every host of the fleet, into ``result``.

    Every host must answer first: one that does not fails the stage before any host changes
    (exit 3). A stage that changes hosts holds the fleet lock throughout. A switch that fails or
    is not confirmed on any host is undone on every host it changed: rolled back (exit 1, or 3
    naming the hosts that could not be put back)."""
    down = unreachable(fleet.hosts, reach)
    if down:
        raise InfraError(
            f"{len(down)} of {len(fleet.hosts)} hosts did not answer: " + "; ".join(
                f"{label(host)}: {why}" for host, why in down.items()) +
            "; nothing was changed on any host",
            "bring the host back (or take it out of platform.fleet and out of the load "
            "balancer), then run the stage again")
    lock: AbstractContextManager[Any] = (
        contextlib.nullcontext() if stage in READ_ONLY else fleet_lock())
    with lock:
        runs = fleet.run(argv, stage=stage)
        fill(result, runs)
        if stage != "switch" or not result.exit_code or "--dry-run" in argv:
            return
        switched = [host for host, run in runs.items()
                    if run.code == 0 and run.result and run.result.get("changed")]
        if not switched:
            return
        fleet.log.warning(f"switch failed on some hosts: putting back the {len(switched)} that "
                       f"switched ({', '.join(label(h) for h in switched)})")
        back = fleet.run([*argv[:command_at(argv)], "rollback"], hosts=switched,
                         stage="rollback")
        stuck = [f"{label(host)} (exit {run.code}: {run.message})"
                 for host, run in back.items() if run.code]
        result.extra["put_back"] = {label(host): run.code == 0 for host, run in back.items()}
        if stuck:
            result.exit_code, result.status = 3, "error"
            result.message += (f"; {len(stuck)} switched hosts could NOT be put back: "
                               + "; ".join(stuck) + " (`bgci status` shows each host)")
        else:
            result.message += (f"; the {len(switched)} hosts that had switched were rolled "
                               "back: every host serves what it served before")
