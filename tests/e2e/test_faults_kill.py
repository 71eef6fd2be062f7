"""`kill -9` of bgci at every checkpoint of deploy-green, switch and rollback (bgci/faults.py):
afterwards live traffic goes to exactly one healthy colour, and re-running the stage gets past the
dead process's deploy lock (broken at once, and said so) and completes what was interrupted.

One app per platform serves all checkpoints: each test first brings it to what its stage needs
(something live; a verified candidate; a previous colour to roll back to), using fresh releases so
that no digest is ever verified or quarantined by an earlier test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from faults_support import (
    TRACEBACK,
    SharedApp,
    assert_one_healthy_colour,
    grouped,
    kill_at,
    lock_broken_message,
    shared_app,
)

from bgci.faults import POINTS

pytestmark = pytest.mark.e2e


def _order(points: tuple[str, ...]) -> list[str]:
    """All checkpoints, arranged so that each test leaves what the next one needs: deploy-green
    leaves a candidate to switch to, a switch a previous colour to roll back to, a rollback an
    idle colour to deploy to."""
    def of(stage: str) -> list[str]:
        return [p for p in points if p.startswith(f"{stage}:")]

    triples = itertools.zip_longest(of("deploy-green"), of("switch"), of("rollback"))
    known = [p for triple in triples for p in triple if p]
    return known + [p for p in points if p not in known]


# Where live traffic must be right after the kill: on the colour live before the stage ("old")
# or on the one the stage moves it to ("new").
LIVE_AFTER_KILL = {
    "deploy-green:locked": "old", "deploy-green:started": "old", "deploy-green:routed": "old",
    "deploy-green:recorded": "old",
    "switch:locked": "old", "switch:switched": "new", "switch:confirmed": "new",
    "switch:recorded": "new",
    "rollback:locked": "old", "rollback:recreated": "old", "rollback:switched": "new",
    "rollback:recorded": "new",
}


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


@pytest.fixture(scope="module", params=grouped("faults-kill"))
def app(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    # no smoke suite: `verify` is the health check only, which keeps twelve cycles fast
    with shared_app(request, tmp_path_factory, {"verify.smoke": ""}) as shared:
        yield shared


# -- bringing the shared app to what a stage needs --------------------------------------------
def look(app: SharedApp) -> dict[str, Any]:
    """`bgci status` as the previous test left it, else asked now."""
    status, app.status = app.status, None
    return status if status is not None else app.p.status()


def ensure_live(app: SharedApp) -> dict[str, Any]:
    p = app.p
    status = look(app)
    live = status["live"]
    if live is None or not status["colours"][live]["healthy"]:
        p.run("deploy-green", "--image", app.fresh())
        p.run("verify")
        p.run("switch")
        status = p.status()
    return status


def ensure_candidate(app: SharedApp) -> dict[str, Any]:
    """A verified, healthy candidate on the idle colour."""
    p = app.p
    status = ensure_live(app)
    idle = status["colours"][other(status["live"])]
    if idle["candidate"] and idle["verified"] and idle["healthy"]:
        return status
    if not (idle["candidate"] and idle["healthy"] and not idle["quarantined"]):
        p.run("deploy-green", "--image", app.fresh())
    p.run("verify")
    return p.status()


def ensure_previous(app: SharedApp) -> dict[str, Any]:
    """A completed switch whose previous colour still runs its release (an instant rollback)."""
    p = app.p
    status = ensure_live(app)
    previous = status["previous"]
    if (previous is None or previous == status["live"] or not status["colours"][previous]["healthy"]
            or status["colours"][previous]["candidate"]):
        ensure_candidate(app)
        p.run("switch")
        status = p.status()
    return status


def brief(status: dict[str, Any]) -> dict[str, Any]:
    """The status without its history (an assertion message pytest does not cut short)."""
    return {k: v for k, v in status.items() if k != "history"}


def last(status: dict[str, Any], stage: str) -> dict[str, Any]:
    entries = [h for h in status["history"] if h["stage"] == stage]
    assert entries, f"no {stage} in the history: {status['history']}"
    return entries[-1]


# -- the test ---------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("point", _order(POINTS))
def test_kill_9_at_checkpoint_then_rerun_completes(app: SharedApp, point: str) -> None:
    stage = point.split(":")[0]
    assert point in LIVE_AFTER_KILL, f"checkpoint {point} is new: say where live traffic must be"
    if stage == "deploy-green":
        _deploy_green(app, point)
    elif stage == "switch":
        _switch(app, point)
    elif stage == "rollback":
        _rollback(app, point)
    else:
        raise AssertionError(f"no kill scenario for stage {stage!r} ({point})")


def _deploy_green(app: SharedApp, point: str) -> None:
    p = app.p
    live = ensure_live(app)["live"]
    idle = other(live)
    ref = app.fresh()

    killed = kill_at(p, point, "deploy-green", "--image", ref)
    assert_one_healthy_colour(p, live)

    rerun = p.run("deploy-green", "--image", ref)
    assert lock_broken_message(killed.pid) in rerun.err, rerun
    assert TRACEBACK not in rerun.text
    assert_one_healthy_colour(p, live)
    p.assert_serves(idle, app.target.version("v1"), p.preview_url)
    status = p.status()
    assert (status["live"], status["lock"]) == (live, None), brief(status)
    colour = status["colours"][idle]
    assert {k: colour[k] for k in ("image", "running", "healthy", "candidate", "quarantined")} == {
        "image": ref, "running": True, "healthy": True, "candidate": True, "quarantined": False,
    }, (colour.get("health"), colour)  # what the probes saw first: a long dict is cut
    assert status["colours"][live]["candidate"] is False
    # the deploy is recorded once the re-run finished it, whatever the kill left behind
    entry = last(status, "deploy-green")
    assert (entry["image"], entry["digest"]) == (ref, colour["digest"]), entry
    app.status = status


def _switch(app: SharedApp, point: str) -> None:
    p = app.p
    before = ensure_candidate(app)
    old = before["live"]
    new = other(old)
    candidate = before["colours"][new]

    killed = kill_at(p, point, "switch")
    assert_one_healthy_colour(p, old if LIVE_AFTER_KILL[point] == "old" else new)

    rerun = p.run("switch")
    assert lock_broken_message(killed.pid) in rerun.err, rerun
    assert TRACEBACK not in rerun.text
    if LIVE_AFTER_KILL[point] == "new" and point != "switch:recorded":
        assert "the switch was never recorded" in rerun.err, rerun
    assert_one_healthy_colour(p, new)
    status = p.status()
    assert (status["live"], status["previous"], status["lock"]) == (new, old, None), brief(status)
    assert [status["colours"][c]["candidate"] for c in (new, old)] == [False, False], status
    assert status["colours"][new]["digest"] == candidate["digest"]
    assert status["colours"][old]["running"] and status["colours"][old]["healthy"], (
        "the old colour must keep running for an instant rollback")
    assert f"-> {new}" in last(status, "switch")["change"] or (
        f"interrupted switch to {new}" in last(status, "switch")["change"])
    app.status = status


def _rollback(app: SharedApp, point: str) -> None:
    p = app.p
    before = ensure_previous(app)
    if point == "rollback:recreated":  # the previous colour is gone: rollback must re-create it
        p.run("retire", "--force")
        assert p.status()["colours"][before["previous"]]["running"] is False
    bad, back = before["live"], before["previous"]
    bad_digest = before["colours"][bad]["digest"]
    back_digest = before["colours"][back]["digest"]

    killed = kill_at(p, point, "rollback")
    assert_one_healthy_colour(p, bad if LIVE_AFTER_KILL[point] == "old" else back)

    rerun = p.run("rollback")
    assert lock_broken_message(killed.pid) in rerun.err, rerun
    assert TRACEBACK not in rerun.text
    assert_one_healthy_colour(p, back)
    status = p.status()
    assert (status["live"], status["previous"], status["lock"]) == (back, None, None), brief(status)
    assert bad_digest in status["quarantined"], status["quarantined"]
    assert back_digest not in status["quarantined"]
    assert status["colours"][bad]["quarantined"] is True
    assert status["colours"][back]["digest"] == back_digest
    assert f"live {bad} -> {back}" in last(status, "rollback")["change"]
    app.status = status
