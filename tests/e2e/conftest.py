"""Fixtures of the end-to-end suite: the engine and images (fail, never skip, when missing), the
platform under test (``target``, parametrised over platforms), project directories, the JUnit
schema and an sshd for DOCKER_HOST=ssh://.

Only the ``target`` fixture knows which platform a test runs on: a platform is added by adding its
name to ``PLATFORMS`` and a branch to ``_open_target``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_docker import DockerReleases, DockerTarget
from e2e_process import ProcessReleases, ProcessTarget
from e2e_support import (
    REPO,
    SETUP_HINT,
    Project,
    Target,
    fresh_port,
    make_project,
    test_env,
)
from e2e_swarm import SwarmTarget, beyond_subset, single_node_swarm

# The empty image bgci makes its state and lock containers from (bgci/platforms/docker.py).
STATE_IMAGE = "bgci/state:1"

# Platforms every platform-neutral test runs on; each carries the marker that selects it.
PLATFORMS = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("process", marks=pytest.mark.process, id="process"),
    pytest.param("swarm", marks=[pytest.mark.docker, pytest.mark.swarm], id="swarm"),
]


# -- docker -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client for the engine at DOCKER_HOST, with the test images present.

    Fails (not skips) with how to fix it: a suite that skips when its engine is gone proves nothing.
    """
    import docker
    import docker.errors

    try:
        facts = test_env()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    client, problem = None, ""
    with warnings.catch_warnings():
        # the SDK leaks the socket of a failed connect: not the finding this fixture reports
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except Exception as exc:  # the SDK raises many unrelated types for "no engine"
            problem = str(exc)
            if client is not None:
                client.close()
        gc.collect()
    if problem:
        pytest.fail(f"the docker engine at {os.environ.get('DOCKER_HOST', 'the local socket')} "
                    f"does not answer ({problem}): {SETUP_HINT}", pytrace=False)
    assert client is not None
    try:
        missing = []
        for key in ("BGCI_TEST_BASE_IMAGE", "BGCI_TEST_HAPROXY_IMAGE"):
            try:
                client.images.get(facts[key])
            except docker.errors.ImageNotFound:
                missing.append(facts[key])
        if missing:
            pytest.fail(f"test image(s) {', '.join(missing)} not on the engine: {SETUP_HINT}",
                        pytrace=False)
        had_state_image = bool(client.images.list(name=STATE_IMAGE))
        yield client
        if not had_state_image:  # bgci made it for this session's apps; others may use it now
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(STATE_IMAGE)
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_releases(docker_client: Any,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerReleases]:
    """v1/v2/v3/unhealthy images of the example app, each built once (on first use)."""
    releases = DockerReleases(docker_client, tmp_path_factory.mktemp("releases"))
    try:
        yield releases
    finally:
        releases.cleanup()


# -- process ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def process_releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessReleases]:
    """v1/v2/v3/unhealthy releases of the example app in one state dir for the session, each
    built once (on first use); at the end no process of that state dir may run."""
    try:
        test_env()  # the wheelhouse the releases are built from
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    releases = ProcessReleases(tmp_path_factory.mktemp("process"))
    try:
        yield releases
    finally:
        releases.cleanup()


# -- swarm ------------------------------------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``@pytest.mark.platforms(KIND, ...)`` (or one of its params so marked) runs
    on those platforms only: its other platforms' items are deselected, never skipped. Swarm runs
    a subset of the platform-neutral tests unless BGCI_E2E_SWARM=all (e2e_swarm.py)."""
    dropped = [item for item in items if on_another_platform(item) or beyond_subset(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]


def on_another_platform(item: pytest.Item) -> bool:
    kinds = {param.values[0] for param in PLATFORMS}
    params = getattr(getattr(item, "callspec", None), "params", {})
    on = next((v for v in params.values() if isinstance(v, str) and v in kinds), None)
    return on is not None and any(on not in m.args for m in item.iter_markers("platforms"))


@pytest.fixture(scope="session")
def swarm_manager(docker_client: Any) -> Iterator[Any]:
    """The engine as a single-node swarm manager for the session (left as it was found)."""
    with single_node_swarm(docker_client):
        yield docker_client


# -- the platform under test ------------------------------------------------------------------
def _open_target(kind: str, request: pytest.FixtureRequest) -> Target:
    if kind == "docker":
        return DockerTarget(request.getfixturevalue("docker_client"),
                            request.getfixturevalue("docker_releases"))
    if kind == "process":
        return ProcessTarget(request.getfixturevalue("process_releases"))
    if kind == "swarm":
        return SwarmTarget(request.getfixturevalue("swarm_manager"),
                           request.getfixturevalue("docker_releases"))
    raise AssertionError(f"no e2e target for platform {kind!r}")


@pytest.fixture(params=PLATFORMS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The platform the test deploys to; everything of its apps is removed afterwards."""
    opened = _open_target(request.param, request)
    try:
        yield opened
    finally:
        opened.cleanup()


@pytest.fixture
def docker_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The docker platform, for tests about the engine itself (DOCKER_HOST, reachability)."""
    opened = _open_target("docker", request)
    try:
        yield opened
    finally:
        opened.cleanup()


@pytest.fixture
def process_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The process platform, for what only it has (releases built on this machine, detached
    processes, the examples' bgci.process.toml, the quickstart)."""
    opened = _open_target("process", request)
    try:
        yield opened
    finally:
        opened.cleanup()


@pytest.fixture
def new_project(tmp_path: Path, target: Target) -> Callable[..., Project]:
    """``new_project(overrides=None, smoke_files=None, schema=None)``: a project for a new app."""
    count = 0

    def make(overrides: dict[str, Any] | None = None, **kw: Any) -> Project:
        nonlocal count
        count += 1
        return make_project(tmp_path / f"project{count}", target, overrides, **kw)

    return make


@pytest.fixture(scope="session")
def junit_schema() -> Any:
    """tests/data/junit-10.xsd (the repository carries it); missing = fail."""
    import xmlschema

    xsd = REPO / "tests" / "data" / "junit-10.xsd"
    if not xsd.is_file():
        pytest.fail(f"JUnit schema not found at {xsd}", pytrace=False)
    return xmlschema.XMLSchema(str(xsd))


# -- sshd for DOCKER_HOST=ssh:// --------------------------------------------------------------
SSHD = Path("/usr/sbin/sshd")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited {proc.returncode}: {log.read_text(errors='replace')}",
                        pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"sshd does not listen on 127.0.0.1:{port}: "
                            f"{log.read_text(errors='replace')}", pytrace=False)
            time.sleep(0.1)


@dataclass
class SshDockerHost:
    env: dict[str, str]  # DOCKER_HOST and HOME for bgci
    log: Path  # sshd's log: proof that the engine was reached through it


@pytest.fixture
def ssh_docker_host(tmp_path: Path) -> Iterator[SshDockerHost]:
    """A private sshd on 127.0.0.1 for root by key, and the environment that makes bgci (the
    docker SDK, through paramiko) reach the local engine through it: DOCKER_HOST=ssh://... and a
    HOME whose .ssh has the key, a config and the sshd's host key in known_hosts.

    The SDK rejects unknown host keys whatever ssh_config says (paramiko RejectPolicy), so the
    host key goes into known_hosts rather than relying on StrictHostKeyChecking=no.
    """
    if not SSHD.is_file():
        pytest.fail(f"{SSHD} is missing (package openssh-server): {SETUP_HINT}", pytrace=False)
    if not Path("/run/sshd").is_dir():
        pytest.fail(f"/run/sshd (sshd's privilege separation directory) is missing: {SETUP_HINT}",
                    pytrace=False)
    keygen = shutil.which("ssh-keygen")
    docker_cli = shutil.which("docker")
    if keygen is None or docker_cli is None:
        pytest.fail(f"ssh-keygen and the docker CLI must be on PATH: {SETUP_HINT}", pytrace=False)
    work = tmp_path / "sshd"
    home = tmp_path / "home"
    ssh_dir = home / ".ssh"
    work.mkdir()
    ssh_dir.mkdir(parents=True, mode=0o700)
    for key in (work / "host_key", ssh_dir / "id_ed25519"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                       capture_output=True)
    (work / "authorized_keys").write_text((ssh_dir / "id_ed25519.pub").read_text())
    port = fresh_port()
    # the remote end runs `docker system dial-stdio`: the CLI's directory must be on its PATH
    path = os.pathsep.join(dict.fromkeys([str(Path(docker_cli).parent), "/usr/local/sbin",
                                          "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
                                          "/bin"]))
    config = work / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        f"HostKey {work / 'host_key'}",
        f"AuthorizedKeysFile {work / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        f"PidFile {work / 'sshd.pid'}",
        # the Docker SDK opens a session per connection of its pool (sshd's default is 10)
        "MaxSessions 100",
        "MaxStartups 100",
        f"SetEnv PATH={path}",
        "",
    ]))
    host_key = (work / "host_key.pub").read_text().split()
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (ssh_dir / "config").write_text("\n".join([
        "Host 127.0.0.1",
        f"    Port {port}",
        "    User root",
        f"    IdentityFile {ssh_dir / 'id_ed25519'}",
        "    StrictHostKeyChecking no",
        "    UserKnownHostsFile /dev/null",
        "",
    ]))
    log = work / "sshd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)],
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    try:
        _wait_listening(port, proc, log)
        yield SshDockerHost({"DOCKER_HOST": f"ssh://root@127.0.0.1:{port}", "HOME": str(home)},
                            log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
