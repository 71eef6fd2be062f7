"""The deploy lock between pipelines: two at once, one waits and gives up naming the other; an
operator sees and releases the lock of a pipeline that hangs holding it; the lock of a pipeline
that died on this host is broken by the next one."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import TRACEBACK, Project, Target

pytestmark = pytest.mark.e2e


def slow_deploy(p: Project, image: str, seconds: int, reports: Path | None = None) -> list[str]:
    """deploy-green whose pre_deploy hook (run while holding the lock) takes ``seconds``."""
    globals_ = ["--reports", str(reports)] if reports else []
    return [*globals_, "--set", f"hooks.pre_deploy.command=sleep {seconds}",
            "deploy-green", "--image", image, "--lock-wait", "1"]


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"bgci pid {proc.pid} did not finish within {timeout}s") from None
    return proc.returncode, out, err


def holder_pid(text: str) -> int | None:
    found = re.search(r"held by \S+ pid (\d+)", text)
    return int(found.group(1)) if found else None


@pytest.mark.e2e
def test_concurrent_deploys_one_wins_the_other_names_the_holder(
        target: Target, new_project: Callable[..., Project], tmp_path: Path) -> None:
    p = new_project()
    image = target.release("v1")
    dirs = [tmp_path / "reports-a", tmp_path / "reports-b"]
    procs = [p.start(*slow_deploy(p, image, 6, d)) for d in dirs]
    try:
        # whoever lost gives up after --lock-wait 1, while the winner still sleeps in its hook
        deadline = time.monotonic() + 60
        while all(proc.poll() is None for proc in procs):
            assert time.monotonic() < deadline, "neither deploy-green gave up on the lock"
            time.sleep(0.05)
        loser_index = next(i for i, proc in enumerate(procs) if proc.poll() is not None)
        winner = procs[1 - loser_index]
        held = p.run("lock", "status")
        assert holder_pid(held.out) == winner.pid, held
        results = {i: finish(proc) for i, proc in enumerate(procs)}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

    code, out, err = results[loser_index]
    assert code == 5, f"the loser exited {code}:\n{out}\n{err}"
    assert "held by" in err and holder_pid(err) == winner.pid, err
    assert "--lock-wait" in err and TRACEBACK not in err
    loser = p.result("deploy-green", dirs[loser_index])
    assert (loser["exit_code"], loser["status"]) == (5, "error")
    assert "held by" in loser["message"]

    code, out, err = results[1 - loser_index]
    assert code == 0, f"the winner exited {code}:\n{out}\n{err}"
    assert p.result("deploy-green", dirs[1 - loser_index])["colour"] == "blue"
    p.assert_serves("blue", "1.0.0", p.preview_url)

    free = p.run("lock", "status")
    assert "the deploy lock is free" in free.out
    assert p.result("lock")["extra"]["lock"] is None


def hold_lock(p: Project, image: str) -> subprocess.Popen[str]:
    """A deploy-green that takes the lock and then sits in its pre_deploy hook, in its own process
    group (so that the hook's `sleep` is signalled with it); returns once it holds the lock."""
    holder = p.start(*slow_deploy(p, image, 120), new_session=True)
    deadline = time.monotonic() + 60
    while True:
        held = p.run("lock", "status")
        if holder_pid(held.out) == holder.pid:
            return holder
        if holder.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(holder.pid, signal.SIGKILL)
            out, err = holder.communicate()
            raise AssertionError(f"deploy-green did not take the lock: {held}\n{out}\n{err}")
        time.sleep(0.2)


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # also a stopped group: SIGKILL needs no SIGCONT
    proc.communicate()


@pytest.mark.e2e
def test_lock_of_a_hung_pipeline_is_shown_and_released(
        target: Target, new_project: Callable[..., Project]) -> None:
    p = new_project()
    image = target.release("v1")
    hung = hold_lock(p, image)
    try:
        os.killpg(hung.pid, signal.SIGSTOP)  # alive but going nowhere, like a frozen runner
        held = p.run("lock", "status")
        assert holder_pid(held.out) == hung.pid, held
        assert p.result("lock")["extra"]["lock"]["holder"].endswith(f"pid {hung.pid}")
        blocked = p.run("deploy-green", "--image", image, "--lock-wait", "1", expect=5)
        assert holder_pid(blocked.err) == hung.pid and "bgci lock release" in blocked.err

        released = p.run("lock", "release")
        assert "released the deploy lock" in released.out, released
        assert holder_pid(released.out) == hung.pid
        assert "the deploy lock is free" in p.run("lock", "status").out
        assert "already free" in p.run("lock", "release").out

        p.run("deploy-green", "--image", image, "--lock-wait", "1")
        p.assert_serves("blue", "1.0.0", p.preview_url)
    finally:
        kill_group(hung)


@pytest.mark.e2e
def test_lock_of_a_killed_local_pipeline_is_broken_at_once(
        target: Target, new_project: Callable[..., Project]) -> None:
    p = new_project()
    image = target.release("v1")
    dead = hold_lock(p, image)
    kill_group(dead)
    assert dead.returncode == -signal.SIGKILL
    assert holder_pid(p.run("lock", "status").out) == dead.pid, "the lock outlives its holder"

    run = p.run("deploy-green", "--image", image, "--lock-wait", "1")
    assert f"breaking the deploy lock of a process that is gone (pid {dead.pid}" in run.err, run
    p.assert_serves("blue", "1.0.0", p.preview_url)
    assert "the deploy lock is free" in p.run("lock", "status").out
