"""What bgci refuses or fails, as a user sees it: exit codes 1 and 4, the JUnit report that says
why, and live traffic that never moves to a release that is unverified, unhealthy or failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from e2e_support import TRACEBACK, Project, Target, deploy_live, junit_cases, problem_of

pytestmark = pytest.mark.e2e

SHORT_HEALTH = ("--set", "health.deadline=3")


@pytest.mark.e2e
def test_switch_refuses_unverified_and_unhealthy_green(
        target: Target, new_project: Callable[..., Project], junit_schema: Any) -> None:
    p = new_project(schema=junit_schema)
    deploy_live(p, "v1")
    p.assert_serves("blue", "1.0.0")

    # deployed, healthy, but never verified
    p.run("deploy-green", "--image", target.release("v2"))
    refused = p.run("switch", expect=4)
    assert "has not passed `bgci verify`" in refused.err and TRACEBACK not in refused.text
    result = p.result("switch")
    assert (result["status"], result["colour"]) == ("refused", "green")
    assert p.junit("switch").find(".//failure") is not None
    p.assert_serves("blue", "1.0.0")

    # a release whose /healthz answers 503: deploy-green fails with its logs in the report
    unhealthy = target.release("unhealthy")
    failed = p.run(*SHORT_HEALTH, "deploy-green", "--image", unhealthy, expect=1)
    assert "green did not become healthy" in failed.err and TRACEBACK not in failed.text
    case = junit_cases(p.junit("deploy-green"))["health green"]
    failure = case.find("failure")
    assert failure is not None, "the health check must be a <failure>"
    assert "HTTP 503" in failure.get("message", ""), failure.attrib
    trace = failure.text or ""
    assert "last lines of green's output" in trace, trace
    assert "gunicorn" in trace.lower(), f"the container's log is missing from the report:\n{trace}"
    assert p.result("deploy-green")["status"] == "failed"
    p.assert_serves("blue", "1.0.0")

    # --force skips the verification, never the health check
    refused = p.run(*SHORT_HEALTH, "switch", "--force", expect=4)
    assert "not healthy" in refused.err
    failure = junit_cases(p.junit("switch"))["health green before switch"].find("failure")
    assert failure is not None and "HTTP 503" in failure.get("message", "")
    p.assert_serves("blue", "1.0.0")
    status = p.status()
    assert status["live"] == "blue"
    green = status["colours"]["green"]
    assert (green["image"], green["healthy"], green["verified"]) == (unhealthy, False, False)

    p.assert_junit_valid()


FAILING_SMOKE = '''
import os

import requests


def test_release_is_nine() -> None:
    url = os.environ["BGCI_TARGET_URL"]
    with requests.Session() as http:
        version = http.get(f"{url}/version", timeout=5).json()["version"]
    assert version == "9.9.9", f"release is {version}, not 9.9.9"
'''


@pytest.mark.e2e
def test_failing_smoke_test_fails_verify_and_blocks_switch(
        target: Target, new_project: Callable[..., Project], junit_schema: Any) -> None:
    p = new_project(smoke_files={"test_release.py": FAILING_SMOKE}, schema=junit_schema)
    p.run("deploy-green", "--image", target.release("v1"))

    failed = p.run("verify", expect=1)
    assert "test_release_is_nine" in failed.err and TRACEBACK not in failed.err
    cases = junit_cases(p.junit("verify"))
    [name] = [n for n in cases if n.startswith("smoke::") and n.endswith("test_release_is_nine")]
    failure = cases[name].find("failure")
    assert failure is not None, f"{name} must be a <failure>"
    assert "release is 1.0.0, not 9.9.9" in failure.get("message", ""), failure.attrib
    passing = [n for n in cases if n.endswith("test_echo_round_trips_json")]
    assert passing and problem_of(cases[passing[0]]) is None, "the passing smoke tests are reported"
    assert p.result("verify")["status"] == "failed"

    refused = p.run("switch", expect=4)
    assert "has not passed `bgci verify`" in refused.err
    assert p.answer().status == 503, "nothing may go live"
    blue = p.status()["colours"]["blue"]
    assert (blue["verified"], blue["healthy"]) == (False, True)

    p.assert_junit_valid()
