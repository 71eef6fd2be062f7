"""The examples beside flask-app (which the rest of the suite deploys), each deployed the way its
README says, from a copy of its directory and built by ``bgci build``: with its bgci.process.toml
(local processes behind a managed Traefik) v1 -> v2 blue-green, and with its bgci.toml (its
Dockerfile on the engine, HAProxy) v1. Only what a test must change is changed: free ports, a
unique app name, the session's state dir or the offline images, short health/drain times.

And Django's ALLOWED_HOSTS: without ``health.host`` every health probe is refused with HTTP 400 and
deploy-green fails, saying so; with it the same release deploys.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
from e2e_process import EXAMPLES, ProcessTarget, example_project
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

from tests.helpers.images import OFFLINE_PIP_ARGS, apply_overrides, test_env, to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Example:
    directory: str  # under examples/
    app: str  # its bgci.process.toml's app
    host: str  # the Host header it must be sent ("" = any)
    own_smoke_test: str  # a smoke test only this example has


DJANGO = Example("django-app", "django-demo", "django-demo.example",
                 "test_a_host_not_in_allowed_hosts_is_refused")
FASTAPI = Example("fastapi-app", "fastapi-demo", "", "test_openapi_document_names_the_release")


@pytest.fixture
def target(process_target: ProcessTarget) -> ProcessTarget:
    """The process platform only: the examples' bgci.process.toml are the configs under test."""
    return process_target


def who(url: str, host: str = "") -> tuple[int, str | None, str | None]:
    """(HTTP status, X-Bgci-Color, version) of one fresh GET ``url``/version for ``host``."""
    headers = {"Host": host} if host else {}
    response = requests.get(f"{url}/version", headers=headers, timeout=HTTP_TIMEOUT)
    version = response.json().get("version") if response.status_code == 200 else None
    return response.status_code, response.headers.get(COLOUR_HEADER), version


@pytest.mark.process
@pytest.mark.parametrize("example", [DJANGO, FASTAPI], ids=lambda e: e.directory)
def test_example_builds_and_deploys_blue_green(example: Example, target: ProcessTarget,
                                               tmp_path: Path) -> None:
    p = example_project(example.directory, tmp_path / "app", target, example.app)

    p.run("build", "--tag", "v1")
    assert p.result("build")["image"] == "v1"
    p.run("deploy-green")  # the release the build recorded
    assert who(p.preview_url, example.host) == (200, "blue", "1.0.0")

    p.run("verify")
    cases = junit_cases(p.junit("verify"))
    smoke = sorted(name for name in cases if name.startswith("smoke::"))
    assert any(name.endswith(example.own_smoke_test) for name in smoke), smoke
    assert len(smoke) >= 5 and all(problem_of(cases[name]) is None for name in smoke), smoke

    p.run("switch")
    assert who(p.live_url, example.host) == (200, "blue", "1.0.0")

    (p.root / "VERSION").write_text("2.0.0\n", encoding="utf-8")
    p.run("deploy", "--tag", "v2")  # build, deploy-green, verify, switch in one process
    assert who(p.live_url, example.host) == (200, "green", "2.0.0")
    assert who(p.preview_url, example.host) == (200, "blue", "1.0.0")
    status = p.status()
    assert status["live"] == "green"
    assert [h["stage"] for h in status["history"]] == [
        "deploy-green", "verify", "switch", "deploy-green", "verify", "switch"]


@pytest.mark.process
def test_django_needs_health_host_for_its_allowed_hosts(target: ProcessTarget, tmp_path: Path) -> None:
    p = example_project(DJANGO.directory, tmp_path / "app", target, DJANGO.app)
    p.run("build", "--tag", "v1")

    # what a user sees who leaves health.host out: every probe refused, deploy-green fails
    failed = p.run("--set", 'health.host=""', "--set", "health.deadline=3", "deploy-green",
                   expect=1)
    assert "blue did not become healthy" in failed.err and TRACEBACK not in failed.text, failed
    failure = junit_cases(p.junit("deploy-green"))["health blue"].find("failure")
    assert failure is not None, "the health check must be a <failure>"
    assert "HTTP 400" in failure.get("message", ""), failure.attrib
    assert "Invalid HTTP_HOST header" in (failure.text or ""), "the app's log says why"
    assert p.result("deploy-green")["status"] == "failed"

    # the example's own config sends the host its ALLOWED_HOSTS names: the same release deploys
    p.run("deploy-green")
    assert who(p.preview_url, DJANGO.host) == (200, "blue", "1.0.0")
    assert who(p.preview_url)[0] == 400, "Django must still refuse a Host it does not serve"
    p.run("verify")
    p.run("switch")
    assert who(p.live_url, DJANGO.host) == (200, "blue", "1.0.0")


def docker_example_project(example: Example, root: Path, target: Any) -> tuple[Project, str]:
    """A copy of ``examples/<example>`` with the wheelhouse as ``wheels/`` and its own bgci.toml,
    changed only where the test environment must: the offline base image and pip options, the
    local HAProxy image, a unique app and image name, free ports, short health/drain times.
    Returns the project and the image repository ``bgci build`` tags."""
    facts = test_env()
    shutil.copytree(EXAMPLES / example.directory, root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", "bgci-reports", "wheels"))
    shutil.copytree(facts["BGCI_TEST_WHEELS"], root / "wheels")
    config = tomllib.loads((root / "bgci.toml").read_text(encoding="utf-8"))
    app = unique_app(example.app)
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    repository = f"bgci-e2e/{app}"
    apply_overrides(config, {
        "app": app, "build.image": repository,
        "build.build_args": {"BASE_IMAGE": facts["BGCI_TEST_BASE_IMAGE"], "PIP_ARGS": OFFLINE_PIP_ARGS},
        "router.image": facts["BGCI_TEST_HAPROXY_IMAGE"], "router.listen": listen,
        "router.preview": preview, "health.interval": 0.2, "switch.drain": 1,
    })
    (root / "bgci.toml").write_text(to_toml(config), encoding="utf-8")
    target.adopt(app)
    return Project(root=root, app=app, listen=listen, preview=preview, target=target), repository


@pytest.mark.docker
@pytest.mark.parametrize("example", [DJANGO, FASTAPI], ids=lambda e: e.directory)
def test_example_builds_and_deploys_on_docker(example: Example, docker_target: Any,
                                              docker_client: Any, tmp_path: Path) -> None:
    p, repository = docker_example_project(example, tmp_path / "app", docker_target)
    try:
        p.run("build", "--tag", "v1")  # the example's Dockerfile, on the offline base image
        p.run("deploy-green")
        assert who(p.preview_url, example.host) == (200, "blue", "1.0.0")
        p.run("verify")
        cases = junit_cases(p.junit("verify"))
        assert any(name.endswith(example.own_smoke_test) and problem_of(case) is None
                   for name, case in cases.items()), sorted(cases)
        p.run("switch")
        assert who(p.live_url, example.host) == (200, "blue", "1.0.0")
    finally:
        docker_target.cleanup()  # its containers first: then the image can go
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"{repository}:v1", force=True)
