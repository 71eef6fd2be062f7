"""The router goes away in the middle of a stage: restarted through the engine, stopped (as by an
operator or `bgci down`), or crashed. bgci either completes the stage or exits 3 having changed
nothing; either way live traffic ends on exactly one healthy colour, the live colour survives the
router's restart (its files keep it), and the next stage completes.

The stage is held still at a known place (a pre_switch hook waiting for the test: after the
checks, right before the router is told to switch) while the test breaks the router.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from faults_support import (
    TRACEBACK,
    Gate,
    SharedApp,
    assert_one_healthy_colour,
    background,
    burst,
    crash_router,
    finish,
    grouped,
    restart_router,
    shared_app,
    stop_router,
)

pytestmark = pytest.mark.e2e

NO_SMOKE = ("--set", "verify.smoke=")


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


@pytest.fixture(scope="module", params=grouped("faults-router", ("docker", "process")))
def app(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    with shared_app(request, tmp_path_factory, {"verify.smoke": ""}) as shared:
        yield shared


def candidate_ready(app: SharedApp) -> tuple[str, str]:
    """Something live and a verified candidate on the idle colour: (live, idle)."""
    p = app.p
    status = app.status if app.status is not None else p.status()
    app.status = None
    if status["live"] is None or not status["colours"][status["live"]]["healthy"]:
        p.run("deploy-green", "--image", app.fresh())
        p.run("switch", "--force")
        status = p.status()
    live = status["live"]
    p.run("deploy-green", "--image", app.fresh())
    p.run(*NO_SMOKE, "verify")
    return live, other(live)


def wait_serving(p: Any, colour: str, timeout: float = 30.0) -> None:
    """Until a whole burst through the live address is 200 from ``colour`` (a restarted router
    takes a moment to listen again)."""
    deadline = time.monotonic() + timeout
    while True:
        got = burst(p.live_url, 5)
        if got.one_colour() == colour:
            return
        assert time.monotonic() < deadline, f"live traffic did not come back on {colour}: {got}"
        time.sleep(0.2)


@pytest.mark.e2e
@pytest.mark.parametrize("fault", [
    # only a container engine restarts the router by itself (restart policy)
    pytest.param("restart", marks=pytest.mark.platforms("docker")),
    "stop",
])
def test_router_breaks_in_the_middle_of_a_switch(app: SharedApp, fault: str) -> None:
    p = app.p
    live, idle = candidate_ready(app)
    gate = Gate.at(p.root, "switch")
    with background(p, "--set", f"hooks.pre_switch.command={gate.command()}", "switch") as proc:
        gate.wait(proc)  # checks done, the router not yet told
        (restart_router if fault == "restart" else stop_router)(p)
        gate.open()
        run = finish(proc)

    assert run.code in (0, 3), run
    assert TRACEBACK not in run.text
    if run.code == 3:  # the router did not answer: nothing may have changed
        if fault == "restart":
            wait_serving(p, live)
        # a stopped router serves nothing: status says so with exit 1 (for a cron job to alert)
        status = p.status(expect=1 if fault == "stop" else 0)
        assert status["colours"][idle]["candidate"] is True and status["lock"] is None, status
        assert status["previous"] != live, "an unconfirmed switch was recorded"
    else:
        wait_serving(p, idle)

    # the next stage (re)starts a stopped router with the live colour its files kept, then switches
    again = p.run("switch")
    if fault == "stop" and run.code == 3:
        started = [line for line in again.err.splitlines()
                   if f"starting router bgci-{p.app}-router" in line]
        assert started and started[0].endswith(f"live: {live})"), again
    assert_one_healthy_colour(p, idle)
    status = p.status()
    assert (status["live"], status["previous"], status["lock"]) == (idle, live, None), status
    assert status["router"] == "running"
    app.status = status


@pytest.mark.e2e
def test_router_crash_keeps_the_live_colour(app: SharedApp) -> None:
    p = app.p
    live, idle = candidate_ready(app)
    p.run("switch")  # the live colour now comes from the runtime switch, not the first config
    assert_one_healthy_colour(p, idle)

    crash_router(p)
    if p.target.kind == "docker":
        wait_serving(p, idle)  # back by the restart policy alone, with the same live colour
        restart_router(p)
        wait_serving(p, idle)
    else:
        # no supervisor on the process platform: the router stays down until the next stage,
        # which starts it again with the live colour from its files
        assert set(burst(p.live_url, 3).statuses) == {None}, "the router should be down"
        down = p.status(expect=1)  # live traffic is not served: exit 1, for a cron job to alert
        assert down["router"] != "running", down
        run = p.run("retire")
        started = [line for line in run.err.splitlines()
                   if f"starting router bgci-{p.app}-router" in line]
        assert started and started[0].endswith(f"live: {idle})"), run
    assert_one_healthy_colour(p, idle)
    status = p.status()
    assert (status["live"], status["previous"], status["router"]) == (idle, live, "running")
    app.status = status
