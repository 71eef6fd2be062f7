"""The docker engine as bgci reaches it: an engine that does not answer (exit 3, nothing changed)
and a remote engine behind DOCKER_HOST=ssh://."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from e2e_support import TRACEBACK, Project, Target, deploy_live

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

UNREACHABLE = {"DOCKER_HOST": "unix:///nonexistent.sock"}


def facts(colours: dict[str, Any]) -> dict[str, Any]:
    """`status` colour entries without the health detail (it carries a latency)."""
    return {c: {k: v for k, v in e.items() if k != "health"} for c, e in colours.items()}


@pytest.fixture
def target(docker_target: Target) -> Target:
    """These tests are about the docker engine itself: docker only."""
    return docker_target


@pytest.mark.e2e
@pytest.mark.docker
def test_unreachable_engine_exits_3_and_changes_nothing(
        target: Target, new_project: Callable[..., Project]) -> None:
    p = new_project()
    deploy_live(p, "v1")
    p.run("deploy-green", "--image", target.release("v2"))
    p.run("verify")  # green is verified: a switch would have something to do
    before = target.snapshot(p.app)

    for args in (("deploy-green", "--image", target.release("v3")), ("switch",), ("status",),
                 ("rollback",)):
        run = p.run(*args, env=UNREACHABLE, expect=3)
        assert "cannot reach the docker engine at unix:///nonexistent.sock" in run.err, run
        assert "nothing was changed" in run.err, run
        assert TRACEBACK not in run.text, run
        result = p.result(args[0])
        assert (result["status"], result["exit_code"]) == ("error", 3)
        assert p.junit(args[0]).find(".//error") is not None, "an infrastructure error is <error>"

    assert target.snapshot(p.app) == before, "an unreachable engine must leave everything as it was"
    p.assert_serves("blue", "1.0.0")
    p.assert_serves("green", "2.0.0", p.preview_url)
    status = p.status()
    assert status["live"] == "blue" and status["lock"] is None
    assert status["colours"]["green"]["candidate"] is True
    assert status["colours"]["green"]["verified"] is True


@pytest.mark.e2e
@pytest.mark.docker
def test_cycle_through_an_ssh_docker_host(target: Target, new_project: Callable[..., Project],
                                          ssh_docker_host: Any) -> None:
    p = new_project()
    ssh = ssh_docker_host.env
    v1, v2 = target.release("v1"), target.release("v2")

    # every kind of stage goes through ssh, the first one creating the router, network and state
    p.run("deploy-green", "--image", v1, env=ssh)
    p.run("verify", env=ssh)
    p.run("switch", env=ssh)
    p.assert_serves("blue", "1.0.0")
    # another runner on the engine's own socket continues from the state the ssh one left
    p.run("deploy-green", "--image", v2)
    p.run("verify")
    p.assert_serves("green", "2.0.0", p.preview_url)
    p.run("switch", env=ssh)
    p.assert_serves("green", "2.0.0")
    p.run("rollback", env=ssh)
    p.assert_serves("blue", "1.0.0")
    result = p.result("rollback")
    assert result["live_url"] == p.live_url, "ssh://127.0.0.1 publishes on 127.0.0.1"

    status = p.status(env=ssh)
    assert status["live"] == "blue"
    assert status["colours"]["green"]["quarantined"] is True
    log = ssh_docker_host.log.read_text(errors="replace")
    assert log.count("Accepted publickey for root") >= 6, f"bgci did not go through sshd:\n{log}"
    # the state read through ssh is the state the local engine has
    assert facts(p.status()["colours"]) == facts(status["colours"])
