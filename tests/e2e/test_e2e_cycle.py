"""The deployment cycle a user runs, stage by stage, through the real CLI: v1 -> v2 -> rollback ->
v3, and stages that are re-run after reaching their goal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from e2e_support import TRACEBACK, Project, Target, junit_cases, problem_of

pytestmark = pytest.mark.e2e


def assert_dotenv(p: Project, live: str, idle: str, image: str, digest: str) -> None:
    env = p.dotenv()
    expected = {"BGCI_LIVE_COLOR": live, "BGCI_IDLE_COLOR": idle, "BGCI_IMAGE": image,
                "BGCI_DIGEST": digest, "BGCI_LIVE_URL": p.live_url,
                "BGCI_PREVIEW_URL": p.preview_url}
    assert {k: env.get(k) for k in expected} == expected


@pytest.mark.e2e
def test_full_cycle_v1_v2_rollback_v3(target: Target, new_project: Callable[..., Project],
                                      junit_schema: Any) -> None:
    p = new_project(schema=junit_schema)
    v1, v2, v3 = (target.release(n) for n in ("v1", "v2", "v3"))
    d1, d2, d3 = (target.digest(n) for n in ("v1", "v2", "v3"))

    # v1 on the first idle colour (blue); nothing is live yet
    p.run("deploy-green", "--image", v1)
    result = p.result("deploy-green")
    assert (result["status"], result["colour"], result["image"], result["digest"]) == (
        "passed", "blue", v1, d1)
    assert result["preview_url"] == p.preview_url and result["live_url"] == p.live_url
    p.assert_serves("blue", "1.0.0", p.preview_url)
    assert p.answer().status == 503, "nothing may be live before the first switch"

    p.run("verify")
    cases = junit_cases(p.junit("verify"))
    smoke = [name for name in cases if name.startswith("smoke::")]
    assert any(name.endswith("test_echo_round_trips_json") for name in smoke), sorted(cases)
    assert all(problem_of(case) is None for case in cases.values()), sorted(cases)

    p.run("switch")
    p.assert_serves("blue", "1.0.0")
    assert problem_of(junit_cases(p.junit("switch"))["switch confirmation"]) is None
    assert_dotenv(p, "blue", "green", v1, d1)

    # v2 on green, previewed while blue stays live, then switched to
    p.run("deploy-green", "--image", v2)
    assert p.result("deploy-green")["colour"] == "green"
    p.assert_serves("green", "2.0.0", p.preview_url)
    p.assert_serves("blue", "1.0.0")
    p.run("verify")
    p.run("switch")
    p.assert_serves("green", "2.0.0")
    p.assert_serves("blue", "1.0.0", p.preview_url)  # the old colour keeps running
    assert_dotenv(p, "green", "blue", v2, d2)

    # rollback: back to v1 on blue, v2's digest quarantined
    p.run("rollback")
    p.assert_serves("blue", "1.0.0")
    rolled = p.result("rollback")
    assert (rolled["colour"], rolled["live_colour"], rolled["image"]) == ("blue", "blue", v1)
    assert_dotenv(p, "blue", "green", v1, d1)
    status = p.status()
    assert d2 in status["quarantined"], status["quarantined"]
    assert status["colours"]["green"]["quarantined"] is True
    assert status["colours"]["green"]["verified"] is False

    refused = p.run("deploy-green", "--image", v2, expect=4)
    assert "quarantined" in refused.err and TRACEBACK not in refused.text
    assert p.result("deploy-green")["status"] == "refused"
    p.assert_serves("blue", "1.0.0")
    p.run("deploy-green", "--image", v2, "--allow-quarantined")
    p.assert_serves("green", "2.0.0", p.preview_url)
    refused = p.run("switch", expect=4)  # still quarantined: never verified again
    assert "quarantined" in refused.err
    p.assert_serves("blue", "1.0.0")

    # v3 on the idle colour (green)
    p.run("deploy-green", "--image", v3)
    assert p.result("deploy-green")["colour"] == "green"
    p.run("verify")
    p.run("switch")
    p.assert_serves("green", "3.0.0")
    assert_dotenv(p, "green", "blue", v3, d3)

    status = p.status()
    assert status["live"] == "green" and status["router"] == "running"
    assert status["live_url"] == p.live_url and status["preview_url"] == p.preview_url
    green, blue = status["colours"]["green"], status["colours"]["blue"]
    assert {k: green[k] for k in ("role", "running", "image", "digest", "verified", "quarantined",
                                  "healthy", "candidate")} == {
        "role": "live", "running": True, "image": v3, "digest": d3, "verified": True,
        "quarantined": False, "healthy": True, "candidate": False}
    assert {k: blue[k] for k in ("role", "running", "image", "digest", "verified", "quarantined",
                                 "healthy")} == {
        "role": "idle", "running": True, "image": v1, "digest": d1, "verified": True,
        "quarantined": False, "healthy": True}
    assert list(status["quarantined"]) == [d2]
    assert status["lock"] is None
    history = [(h["stage"], h["image"]) for h in status["history"]]
    assert history == [
        ("deploy-green", v1), ("verify", v1), ("switch", v1),
        ("deploy-green", v2), ("verify", v2), ("switch", v2),
        ("rollback", v1),
        ("deploy-green", v2),  # --allow-quarantined
        ("deploy-green", v3), ("verify", v3), ("switch", v3),
    ], status["history"]
    assert all(h["outcome"] == "passed" and h["who"] for h in status["history"])

    p.assert_junit_valid()


@pytest.mark.e2e
def test_stages_that_reached_their_goal_succeed_again(target: Target,
                                                      new_project: Callable[..., Project]) -> None:
    p = new_project()
    v1 = target.release("v1")

    p.run("deploy-green", "--image", v1)
    first = target.running(p.app)
    assert list(first) == ["blue"]
    again = p.run("deploy-green", "--image", v1)
    assert "already runs" in again.err
    assert target.running(p.app) == first, "the second deploy-green must not restart blue"
    p.assert_serves("blue", "1.0.0", p.preview_url)

    p.run("verify")
    p.run("switch")
    p.assert_serves("blue", "1.0.0")
    again = p.run("switch")
    assert "already live" in again.out, again
    assert p.result("switch")["live_colour"] == "blue"
    assert target.running(p.app) == first
    p.assert_serves("blue", "1.0.0")
