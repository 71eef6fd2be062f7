"""Green breaks while a stage works on it: it crashes (killed, and stays down) or starts failing
its health check, during `verify`, just before `switch`, during `switch` and during the bake. The
stage fails (exit 1; a switch refuses with 4 when green is unhealthy before the cut-over) and live
traffic stays on, or is put back on, the healthy colour. A failed bake rolls back by itself: in
switch.xml, in the history, and the digest quarantined.

Each fault is injected while the stage waits at a known place: the smoke suite's first test (for
`verify`) or a pre_switch hook (for `switch`) opens a gate and waits for the test, which breaks
green through the platform and lets the stage go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import junit_cases, problem_of
from faults_support import (
    TRACEBACK,
    Gate,
    SharedApp,
    assert_one_healthy_colour,
    background,
    break_colour,
    finish,
    grouped,
    read_until,
    shared_app,
    wait_live,
    write_faults_smoke,
)

pytestmark = pytest.mark.e2e

KINDS = ("crash", "unhealthy")
# the platforms whose colours the test can break (tests/e2e/faults_support.py)
NO_SMOKE = ("--set", "verify.smoke=")  # a verify that only checks health (the fault is elsewhere)
SHORT = ("--set", "health.deadline=3")


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


@pytest.fixture(scope="module", params=grouped("faults-green", ("docker", "process")))
def app(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    with shared_app(request, tmp_path_factory, {"verify.smoke": "faults_smoke"}) as shared:
        write_faults_smoke(shared.p.root)
        yield shared


def new_green(app: SharedApp, *, verified: bool) -> tuple[str, str, str]:
    """Something healthy live, a fresh release deployed (and verified) on the idle colour:
    (live colour, idle colour, the idle colour's release)."""
    p = app.p
    status = app.status if app.status is not None else p.status()
    app.status = None
    live = status["live"]
    if live is None or not status["colours"][live]["healthy"]:
        p.run("deploy-green", "--image", app.fresh())
        p.run(*NO_SMOKE, "verify")
        p.run("switch")
        live = p.status()["live"]
    idle = other(live)
    release = app.fresh()
    p.run("deploy-green", "--image", release)
    if verified:
        p.run(*NO_SMOKE, "verify")
    return live, idle, release


def settle(app: SharedApp, live: str, idle: str, status: dict[str, Any]) -> None:
    """Live traffic is on ``live`` and healthy; keep the status for the next test."""
    assert status["live"] == live and status["lock"] is None, status
    assert status["colours"][live]["healthy"] is True, status
    app.status = status


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_green_breaks_during_verify(app: SharedApp, kind: str) -> None:
    p = app.p
    live, idle, release = new_green(app, verified=False)
    gate = Gate.at(p.root, "verify")
    with background(p, "verify", env=gate.env()) as proc:
        gate.wait(proc)
        break_colour(p, idle, kind, release)
        gate.open()
        run = finish(proc)
    assert run.code == 1, run
    assert "verification of" in run.err and TRACEBACK not in run.text, run
    p.check_reports("verify", run)
    failed = [n for n, c in junit_cases(p.junit("verify")).items() if problem_of(c) is not None]
    assert any("healthz" in name for name in failed), failed
    assert_one_healthy_colour(p, live)
    status = p.status()
    assert status["colours"][idle]["verified"] is False, status["colours"][idle]
    settle(app, live, idle, status)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_switch_refuses_when_green_broke_before_the_cut_over(app: SharedApp, kind: str) -> None:
    p = app.p
    live, idle, release = new_green(app, verified=True)
    break_colour(p, idle, kind, release)
    refused = p.run(*SHORT, "switch", expect=4)
    assert ("not healthy" if kind == "unhealthy" else "not running") in refused.err, refused
    assert TRACEBACK not in refused.text
    assert_one_healthy_colour(p, live)
    settle(app, live, idle, p.status())


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_green_breaks_during_switch(app: SharedApp, kind: str) -> None:
    p = app.p
    live, idle, release = new_green(app, verified=True)
    gate = Gate.at(p.root, "switch")
    with background(p, "--set", f"hooks.pre_switch.command={gate.command()}", "switch") as proc:
        gate.wait(proc)  # past the pre-switch health check, before the router moves
        break_colour(p, idle, kind, release)
        gate.open()
        run = finish(proc)
    assert run.code == 1, run
    assert f"switch to {idle} not confirmed" in run.err and f"put back on {live}" in run.err, run
    p.check_reports("switch", run)
    case = junit_cases(p.junit("switch"))["switch confirmation"]
    assert case.find("failure") is not None
    assert_one_healthy_colour(p, live)
    status = p.status()
    assert status["colours"][idle]["candidate"] is True, "a failed switch records nothing"
    settle(app, live, idle, status)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_green_breaks_during_the_bake_and_is_rolled_back(app: SharedApp, kind: str) -> None:
    p = app.p
    live, idle, release = new_green(app, verified=True)
    digest = p.status()["colours"][idle]["digest"]
    with background(p, "--set", "switch.bake=6", "--set", "switch.max_error_rate=0",
                    "switch") as proc:
        # confirmed and recorded: what follows is the drain (no request in flight: at once), then
        # the bake watching live traffic
        err = read_until(proc, f"live traffic now goes to {idle}")
        wait_live(p, idle)
        break_colour(p, idle, kind, release)
        run = finish(proc, err_so_far=err)
    assert run.code == 1, run
    assert f"bake of {idle} failed and live traffic was rolled back to {live}" in run.err, run
    p.check_reports("switch", run)
    cases = junit_cases(p.junit("switch"))
    bake = cases[f"bake {idle}"].find("failure")
    assert bake is not None and "error rate" in bake.get("message", ""), cases
    assert_one_healthy_colour(p, live)
    status = p.status()
    assert status["previous"] is None and digest in status["quarantined"], status
    assert "bake failed" in status["quarantined"][digest]
    assert status["colours"][idle]["quarantined"] is True
    stages = [(h["stage"], h["change"]) for h in status["history"][-2:]]
    assert stages[0][0] == "switch" and stages[1][0] == "rollback", stages
    assert f"live {idle} -> {live}" in stages[1][1], stages
    settle(app, live, idle, status)
