"""`bgci retire`: the scale-down of the idle colour after switch.retire_after, and what it leaves
(a rollback target that is re-created from its digest)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from e2e_support import Project, Target, deploy_live

pytestmark = pytest.mark.e2e


@pytest.mark.e2e
def test_retire_waits_for_retire_after_then_stops_the_idle_colour(
        target: Target, new_project: Callable[..., Project]) -> None:
    p = new_project()
    deploy_live(p, "v1")
    deploy_live(p, "v2")
    p.assert_serves("green", "2.0.0")
    running = target.running(p.app)
    assert sorted(running) == ["blue", "green"]

    # right after the switch: retire_after (600 s) not reached, blue stays for an instant rollback
    early = p.run("retire")
    assert "left running for an instant rollback" in early.out, early
    assert p.result("retire")["colour"] == "blue"
    assert target.running(p.app) == running
    p.assert_serves("blue", "1.0.0", p.preview_url)

    p.run("--set", "switch.retire_after=0", "retire")
    assert p.result("retire")["colour"] == "blue"
    assert target.running(p.app) == {"green": running["green"]}, "blue must be gone, green untouched"
    assert [s for s in target.snapshot(p.app) if s[1] == f"{p.app}-blue"] == []
    assert p.answer(p.preview_url).status == 503, "nothing answers on the preview any more"
    p.assert_serves("green", "2.0.0")
    status = p.status()
    assert status["live"] == "green"
    blue = status["colours"]["blue"]
    assert (blue["role"], blue["running"], blue["image"]) == ("idle", False, target.release("v1"))
    assert [h["stage"] for h in status["history"]][-1] == "retire"

    # nothing left to retire; and the retired colour is still a rollback target
    again = p.run("--set", "switch.retire_after=0", "retire")
    assert "nothing to retire" in again.out
    p.run("rollback")
    p.assert_serves("blue", "1.0.0")
    assert sorted(target.running(p.app)) == ["blue", "green"]
