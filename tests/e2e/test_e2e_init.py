"""``bgci init`` as a new user runs it: in a copy of an example without its bgci.toml and
.dockerignore, init writes both, and ``bgci deploy`` with that config, unchanged, builds, deploys,
verifies (the example's own smoke suite) and switches. Docker where the example has a Dockerfile
(flask-app, fastapi-app: a second build after the deploy's reports gives the same digest);
django-app without its Dockerfile, so init picks the process platform, gunicorn on demo.wsgi and
a health.host from ALLOWED_HOSTS.

Only what this machine needs comes from the environment, as for any test here (the written file
is not touched): free ports, the offline base and router images and the wheelhouse, the session's
state dir, short health and drain times.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
from e2e_process import EXAMPLES
from e2e_support import (
    COLOUR_HEADER,
    HTTP_TIMEOUT,
    TRACEBACK,
    Project,
    fresh_port,
    junit_cases,
    problem_of,
    unique_app,
)

from bgci.config import load_config
from tests.helpers.images import OFFLINE_PIP_ARGS, test_env

pytestmark = pytest.mark.e2e

CASES = [
    pytest.param("flask-app", "docker", "", marks=pytest.mark.docker, id="flask-app-docker"),
    pytest.param("fastapi-app", "docker", "", marks=pytest.mark.docker, id="fastapi-app-docker"),
    pytest.param("django-app", "process", "django-demo.example", marks=pytest.mark.process,
                 id="django-app-process"),
]


def fresh_example(example: str, root: Path, platform: str) -> None:
    """A copy of the example as a user's project before ``bgci init``: no bgci config, no
    .dockerignore (and no Dockerfile where the test wants the process platform)."""
    shutil.copytree(EXAMPLES / example, root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", "bgci-reports", "wheels", "bgci*.toml",
        ".dockerignore", *(["Dockerfile"] if platform == "process" else [])))
    if platform == "docker":  # the Dockerfile's offline install reads wheels/ (its README)
        shutil.copytree(test_env()["BGCI_TEST_WHEELS"], root / "wheels")


@pytest.mark.parametrize(("example", "platform", "host"), CASES)
def test_init_writes_a_config_with_which_deploy_succeeds_unchanged(
        example: str, platform: str, host: str, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    target: Any = request.getfixturevalue(f"{platform}_target")
    app = unique_app(example)  # init names the app after the directory
    root = tmp_path / app
    fresh_example(example, root, platform)
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    facts = test_env()
    target.env.update({"BGCI_ROUTER_LISTEN": listen, "BGCI_ROUTER_PREVIEW": preview,
                       "BGCI_HEALTH_INTERVAL": "0.2", "BGCI_SWITCH_DRAIN": "1"})
    if platform == "docker":
        target.env.update({"BGCI_BUILD_BUILD_ARGS_BASE_IMAGE": facts["BGCI_TEST_BASE_IMAGE"],
                           "BGCI_BUILD_BUILD_ARGS_PIP_ARGS": OFFLINE_PIP_ARGS,
                           "BGCI_ROUTER_IMAGE": facts["BGCI_TEST_HAPROXY_IMAGE"]})
    else:
        target.env["BGCI_PLATFORM_STATE_DIR"] = str(target.state_dir)
    target.adopt(app)
    p = Project(root=root, app=app, listen=listen, preview=preview, target=target)

    init = p.run("init")
    assert init.out.startswith("bgci init: wrote bgci.toml and .dockerignore\n"), init.out
    assert f"platform:  {platform} (" in init.out and TRACEBACK not in init.text
    written = (root / "bgci.toml").read_text(encoding="utf-8")
    config = load_config(cwd=root, environ={})
    assert (config.app, config.platform.kind, config.health.host) == (app, platform, host)
    assert not (root / "bgci-reports").exists()

    try:
        p.run("deploy", "--tag", "v1")
        headers = {"Host": host} if host else {}
        answer = requests.get(f"{p.live_url}/version", headers=headers, timeout=HTTP_TIMEOUT)
        assert answer.status_code == 200 and answer.json()["version"] == "1.0.0", answer.text
        assert answer.headers[COLOUR_HEADER] == "blue"
        smoke = {name: case for name, case in junit_cases(p.junit("verify")).items()
                 if name.startswith("smoke::")}
        assert len(smoke) >= 4 and not [n for n, c in smoke.items() if problem_of(c) is not None]
        assert (root / "bgci.toml").read_text(encoding="utf-8") == written
        # the .dockerignore init wrote kept the smoke suite, the config and the reports out
        shipped = app_files(target, app, platform)
        assert "VERSION" in shipped and not {"smoke", "bgci.toml", "bgci-reports"} & shipped
        if platform == "docker":  # so the same commit builds the same image, new reports or not
            built = p.result("build")["digest"]
            p.run("build", "--tag", "v1")
            assert p.result("build")["digest"] == built
    finally:
        if platform == "docker":
            target.cleanup()  # its containers first: then the image can go
            with contextlib.suppress(docker.errors.ImageNotFound):
                target.client.images.remove(f"{app}:v1", force=True)


def app_files(target: Any, app: str, platform: str) -> set[str]:
    """The names in the app's directory of what runs: the blue container's /app, or the
    process platform's release."""
    if platform == "process":
        return {p.name for p in (target.state_dir / app / "releases" / "v1" / "app").iterdir()}
    listing = target.client.containers.get(f"{app}-blue").exec_run(["ls", "-A", "/app"])
    assert listing.exit_code == 0, listing.output
    return set(listing.output.decode().split())
