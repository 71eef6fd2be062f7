"""Fixtures of the CI-integration suite: the Docker engine with the local test images (fail, never
skip, when missing), throw-away repositories whose apps are removed from the engine afterwards,
and repositories on the process platform whose processes are stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.images import test_env
from tests.integrations.support import (
    SETUP_HINT,
    AppRepo,
    make_defaults_repo,
    make_repo,
    remove_app,
    stop_process_app,
    unique_app,
)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client for the engine at DOCKER_HOST with the local test images on it."""
    import docker
    import docker.errors

    try:
        facts = test_env()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the SDK raises many unrelated types for "no engine"
        pytest.fail(f"the docker engine at {os.environ.get('DOCKER_HOST', 'the local socket')} "
                    f"does not answer ({exc}): {SETUP_HINT}", pytrace=False)
    try:
        for key in ("BGCI_TEST_BASE_IMAGE", "BGCI_TEST_HAPROXY_IMAGE"):
            try:
                client.images.get(facts[key])
            except docker.errors.ImageNotFound:
                pytest.fail(f"test image {facts[key]} is not on the engine: {SETUP_HINT}",
                            pytrace=False)
        yield client
    finally:
        client.close()


@pytest.fixture
def deployable_repo(tmp_path: Path, docker_client: Any) -> Iterator[Callable[..., AppRepo]]:
    """``deployable_repo(prefix, **make_repo_kw)``: a repository whose app may be deployed on the
    engine; every container, network, volume and image of that app is removed afterwards."""
    apps: list[str] = []

    def make(prefix: str, **kw: Any) -> AppRepo:
        app = unique_app(prefix)
        apps.append(app)
        return make_repo(tmp_path / "repo", app, **kw)

    yield make
    left = [item for app in apps for item in remove_app(docker_client, app)]
    assert not left, f"could not clean up: {left}"


@pytest.fixture
def process_repo(tmp_path: Path) -> Iterator[Callable[[str], tuple[AppRepo, Path]]]:
    """``process_repo(prefix)``: a repository laid out as a team's on the embedded default (see
    ``make_defaults_repo``) and its state dir; afterwards ``bgci down`` stops what the pipeline
    left running, and nothing may still run from the state dir."""
    made: list[tuple[AppRepo, Path]] = []

    def make(prefix: str) -> tuple[AppRepo, Path]:
        state = tmp_path / "state"
        repo = make_defaults_repo(tmp_path / "repo", unique_app(prefix), state)
        made.append((repo, state))
        return repo, state

    yield make
    left = [item for repo, state in made
            for item in stop_process_app(repo, state, tmp_path / "down-reports")]
    assert not left, f"still running after bgci down (killed): {left}"
