"""examples/migrations-app on docker, as its bgci.docker.toml says: the migration as a
``run_in = "green"`` pre_switch hook in a one-off container of the NEW image, and one SQLite file
that both colours and the hook share through the engine volume ``<app>-data``
(``platform.volumes``). v1 creates the schema, v2 (the files in next/) adds a column; a note v1's
container wrote is read by v2's container after the one-off migrated the file under both.

The process-platform twin, with traffic watched through the migration, is test_migrations.py.
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
    Project,
    fresh_port,
    junit_cases,
    problem_of,
    unique_app,
)

from tests.helpers.images import OFFLINE_PIP_ARGS, test_env

pytestmark = [pytest.mark.e2e, pytest.mark.docker]


def who(url: str) -> tuple[int, str | None, str | None]:
    answer = requests.get(f"{url}/version", timeout=HTTP_TIMEOUT)
    version = answer.json().get("version") if answer.status_code == 200 else None
    return answer.status_code, answer.headers.get(COLOUR_HEADER), version


def hook_output(p: Project) -> str:
    case = junit_cases(p.junit("switch"))["hook pre_switch"]
    assert problem_of(case) is None, case.findtext("system-out")
    return case.findtext("system-out") or ""


def test_the_docker_variant_migrates_once_in_a_one_off_on_the_shared_volume(
        docker_target: Any, docker_client: Any, tmp_path: Path) -> None:
    root = tmp_path / "notes-demo"
    shutil.copytree(EXAMPLES / "migrations-app", root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", "bgci-reports", "wheels"))
    facts = test_env()
    shutil.copytree(facts["BGCI_TEST_WHEELS"], root / "wheels")  # the Dockerfile's offline install
    app = unique_app("notes")
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    repository = f"bgci-e2e/{app}"
    # the example's bgci.docker.toml as it is, but with this machine's images, ports and names
    docker_target.env.update({
        "BGCI_CONFIG": "bgci.docker.toml", "BGCI_APP": app, "BGCI_BUILD_IMAGE": repository,
        "BGCI_BUILD_BUILD_ARGS_BASE_IMAGE": facts["BGCI_TEST_BASE_IMAGE"],
        "BGCI_BUILD_BUILD_ARGS_PIP_ARGS": OFFLINE_PIP_ARGS,
        "BGCI_ROUTER_IMAGE": facts["BGCI_TEST_HAPROXY_IMAGE"], "BGCI_ROUTER_LISTEN": listen,
        "BGCI_ROUTER_PREVIEW": preview, "BGCI_HEALTH_INTERVAL": "0.2", "BGCI_SWITCH_DRAIN": "1",
    })
    docker_target.adopt(app)
    p = Project(root=root, app=app, listen=listen, preview=preview, target=docker_target)
    volume = f"{app}-data"
    try:
        p.run("deploy", "--tag", "v1")
        first = hook_output(p)
        assert "Running upgrade  -> 0001" in first and f"in a one-off of {repository}:v1" in first
        assert who(p.live_url) == (200, "blue", "1.0.0")
        labels = docker_client.volumes.get(volume).attrs["Labels"]
        assert labels == {"org.bgci.app": app, "org.bgci.role": "data"}
        written = requests.post(f"{p.live_url}/notes", json={"text": "written by v1"},
                                timeout=HTTP_TIMEOUT)
        assert written.status_code == 201, written.text

        shutil.copytree(root / "next", root, dirs_exist_ok=True)  # release 2.0.0
        p.run("deploy", "--tag", "v2")
        second = hook_output(p)
        assert second.count("Running upgrade 0001 -> 0002") == 1, second
        assert f"in a one-off of {repository}:v2" in second
        cases = junit_cases(p.junit("switch"))
        for colour, role in (("blue", "live"), ("green", "new")):
            name = f"after pre_switch, {colour} ({role}): smoke::test_smoke::test_notes_round_trip"
            assert problem_of(cases[name]) is None and cases[name].find("skipped") is None
        hooks = docker_client.containers.list(all=True, filters={"label": [
            f"org.bgci.app={app}", "org.bgci.role=hook"]})
        assert not hooks, "the one-off containers are removed"

        # one database: v2's container reads the note v1's container wrote, with the column the
        # one-off added; v1 (the preview, the rollback target) still answers in its own shape
        assert who(p.live_url) == (200, "green", "2.0.0")
        live = requests.get(f"{p.live_url}/notes", timeout=HTTP_TIMEOUT).json()
        assert [{k: n[k] for k in ("text", "author")} for n in live] == [
            {"text": "written by v1", "author": "anonymous"}], live  # the smoke notes are gone
        old = requests.get(f"{p.preview_url}/notes", timeout=HTTP_TIMEOUT)
        assert old.headers[COLOUR_HEADER] == "blue" and old.json() == [
            {"id": written.json()["id"], "text": "written by v1"}]
    finally:
        docker_target.cleanup()  # the containers first: then the images and the volume can go
        for tag in ("v1", "v2"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(f"{repository}:{tag}", force=True)
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.volumes.get(volume).remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)
