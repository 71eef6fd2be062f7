"""A ``run_in = "green"`` hook on the docker platform: one one-off container of the NEW image, on
the app's network, with the app's environment, removed afterwards. (The hook semantics on the
process platform, with a real database migration, are in test_migrations.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_support import Target, deploy_live, junit_cases, make_project

# Prints what only a one-off of the v2 image on the app's network with the app's environment
# can know: the image's VERSION file, platform.env, bgci's facts and the blue container's address
# through the network's DNS (which a container outside the network cannot resolve).
HOOK = ("echo version=$(cat /app/VERSION) setting=$APP_SETTING colour=$BGCI_COLOR "
        "stage=$BGCI_STAGE live=$BGCI_LIVE_COLOR; "
        "python3 -c \"import socket; print('blue-at', socket.gethostbyname('$BGCI_APP-blue'))\"")


@pytest.mark.e2e
@pytest.mark.docker
def test_a_green_hook_runs_once_in_a_one_off_container_of_the_new_image_on_the_app_network(
        docker_target: Target, docker_client: Any, tmp_path: Path, junit_schema: Any) -> None:
    p = make_project(tmp_path / "project", docker_target, {
        "platform.env": {"APP_SETTING": "from-platform-env"},
        "hooks.pre_switch": {"command": HOOK, "run_in": "green", "timeout": 120},
    }, schema=junit_schema)
    deploy_live(p, "v1")
    p.assert_serves("blue", "1.0.0")
    p.run("deploy-green", "--image", docker_target.release("v2"))
    p.run("verify")
    p.run("switch")
    p.assert_serves("green", "2.0.0")
    p.assert_junit_valid()

    hooks = [name for name in junit_cases(p.junit("switch")) if name.startswith("hook ")]
    assert hooks == ["hook pre_switch"]
    out = junit_cases(p.junit("switch"))["hook pre_switch"].findtext("system-out") or ""
    assert "version=2.0.0 setting=from-platform-env colour=green stage=switch live=blue" in out, out
    blue = docker_client.containers.get(f"{p.app}-blue")
    blue_ip = blue.attrs["NetworkSettings"]["Networks"][f"bgci-{p.app}"]["IPAddress"]
    assert f"blue-at {blue_ip}" in out, out
    assert f"in a one-off of {docker_target.release('v2')}" in out
    # the one-off is gone: only the colours (and bgci's router/state) are left of the app
    left = docker_client.containers.list(all=True, filters={"label": [f"org.bgci.app={p.app}",
                                                                      "org.bgci.role=hook"]})
    assert not left, [c.name for c in left]
