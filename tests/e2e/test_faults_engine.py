"""The Docker engine restarts in the middle of a switch (dockerd stopped and started again, as an
upgrade or a crash would): bgci completes the stage or exits 3 having changed nothing, the
restart policies bring the router and both colours back, the router comes back with the live
colour its files kept, live traffic ends on exactly one healthy colour, and the next run
completes the switch.

It restarts the engine every other test on this machine talks to, so it runs only when asked:
BGCI_TEST_ENGINE_RESTART=1 (`.ci/run` sets it: there the suite runs alone, one test at a time).
The dockerd to restart is the one whose pid is in BGCI_TEST_DOCKERD_PIDFILE (default
/run/bgci-dockerd.pid, written by scripts/test-env.sh when it starts dockerd; else dockerd's own
/var/run/docker.pid). The test starts the new dockerd exactly as the old one ran (same argv,
environment, working directory, in a session of its own, output appended to
BGCI_TEST_DOCKERD_LOG, default /var/log/bgci-dockerd.log) and records its pid in that pidfile:
it leaves the engine running, as it found it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import TRACEBACK, Project, Target, deploy_live
from faults_support import (
    Gate,
    assert_one_healthy_colour,
    background,
    burst,
    finish,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

ENGINE_RESTART = os.environ.get("BGCI_TEST_ENGINE_RESTART") == "1"
PIDFILES = [Path(p) for p in (os.environ.get("BGCI_TEST_DOCKERD_PIDFILE") or "",
                              "/run/bgci-dockerd.pid", "/var/run/docker.pid") if p]
LOG = Path(os.environ.get("BGCI_TEST_DOCKERD_LOG") or "/var/log/bgci-dockerd.log")
ENGINE_TIMEOUT = 90.0


@pytest.fixture
def target(docker_target: Target) -> Target:
    """The docker engine itself is what this test breaks: docker only."""
    return docker_target


def _dockerd() -> tuple[Path, int]:
    for pidfile in PIDFILES:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().split()[0])
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"dockerd"):
                return pidfile, pid
    pytest.fail(f"no running dockerd found through {[str(p) for p in PIDFILES]}: set "
                "BGCI_TEST_DOCKERD_PIDFILE to the pidfile of the engine at DOCKER_HOST",
                pytrace=False)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2] == "Z"  # a zombie has exited


def _wait(what: str, done: Callable[[], bool], timeout: float = ENGINE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.2)


def restart_engine(client: Any, app: str) -> None:
    """Stop dockerd (SIGTERM: it stops the containers), start it again as it ran, and wait until
    it answers and the restart policies have brought ``app``'s containers back."""
    pidfile, pid = _dockerd()
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    environ = dict(line.decode().split("=", 1) for line in
                   Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in line)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.kill(pid, signal.SIGTERM)
    _wait(f"dockerd pid {pid} did not stop", lambda: _gone(pid))

    def answers() -> bool:
        with warnings.catch_warnings():
            # the SDK leaks the socket of a failed connect: not what this test is about
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                return bool(client.ping())
            except Exception:  # the SDK raises many unrelated types for "no engine"
                return False
            finally:
                gc.collect()

    time.sleep(3)  # a supervisor (systemd) may start it again by itself: then leave it to it
    if not answers():
        # as scripts/test-env.sh does: in a session of its own, nobody waiting for it
        started = subprocess.run(
            ["/bin/sh", "-c", 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!', "sh",
             str(LOG), *argv], env=environ, cwd=cwd, start_new_session=True, capture_output=True,
            text=True, check=True)
        new = int(started.stdout)
        pidfile.write_text(f"{new}\n")
        _wait(f"the restarted dockerd (pid {new}, log {LOG}) did not answer", answers)

    def back() -> bool:
        names = {f"{app}-blue", f"{app}-green", f"bgci-{app}-router"}
        running = {c.name for c in client.containers.list(filters={"label": f"org.bgci.app={app}"})}
        return names <= running

    _wait("the restart policies did not bring the router and both colours back", back)


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.skipif(not ENGINE_RESTART, reason="restarts the docker engine other tests use: set "
                    "BGCI_TEST_ENGINE_RESTART=1 (.ci/run does)")
def test_engine_restart_in_the_middle_of_a_switch(
        target: Target, new_project: Callable[..., Project]) -> None:
    p = new_project({"verify.smoke": "", "switch.drain": 1})
    client = target.client  # type: ignore[attr-defined]
    deploy_live(p, "v1")
    p.run("deploy-green", "--image", target.release("v2"))
    p.run("verify")

    gate = Gate.at(p.root, "switch")
    with background(p, "--set", f"hooks.pre_switch.command={gate.command()}", "switch") as proc:
        gate.wait(proc)  # checks done, the router not yet told
        restart_engine(client, p.app)
        gate.open()
        run = finish(proc)

    assert run.code in (0, 3), run
    assert TRACEBACK not in run.text
    expected = "green" if run.code == 0 else "blue"
    # the router came back by its restart policy with the live colour of its files; the colours'
    # addresses may have changed with the restart: traffic must still reach the live colour
    deadline = time.monotonic() + 30
    while True:
        got = burst(p.live_url, 5)
        if got.one_colour() == expected:
            break
        assert time.monotonic() < deadline, f"live traffic after the engine restart: {got}"
        time.sleep(0.5)

    again = p.run("switch")
    assert TRACEBACK not in again.text
    assert_one_healthy_colour(p, "green")
    status = p.status()
    assert (status["live"], status["previous"], status["lock"]) == ("green", "blue", None), status
    assert status["colours"]["blue"]["running"] and status["colours"]["blue"]["healthy"]
