"""The test hosts of scripts/test-cluster.sh as the end-to-end suite sees them: three Docker
engines, each a dockerd in a network namespace of its own, made into a 3-node swarm (engine 1
manages), and a registry with a user and password beside them.

``cluster_session`` starts them for the test session (``test-cluster.sh up 3``) and removes all of
it at the end (``down``), then checks that no process, namespace or link of theirs is left. Hosts
that were up before the session (a developer's ``up``) are used and left up.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from e2e_support import REPO

SCRIPT = REPO / "scripts" / "test-cluster.sh"
NODES = 3
UP_TIMEOUT = 240.0  # seconds for `up` (measured: ~15 s with the images to load)
DOWN_TIMEOUT = 120.0
PREFIX = "bgci"  # test-cluster.sh's BGCI_CLUSTER_PREFIX: its namespaces, links and user


@dataclass
class Cluster:
    """What ``test-cluster.sh env`` says, plus a client for each engine (1-based)."""

    facts: dict[str, str]
    clients: dict[int, Any] = field(default_factory=dict)
    up_seconds: float = 0.0

    @property
    def registry(self) -> str:
        return self.facts["BGCI_CLUSTER_REGISTRY"]

    @property
    def credentials(self) -> tuple[str, str]:
        return (self.facts["BGCI_CLUSTER_REGISTRY_USER"],
                self.facts["BGCI_CLUSTER_REGISTRY_PASSWORD"])

    def socket(self, node: int) -> str:
        return self.facts[f"BGCI_CLUSTER_SOCKET{node}"]

    def address(self, node: int) -> str:
        return self.facts[f"BGCI_CLUSTER_ADDRESS{node}"]

    def client(self, node: int) -> Any:
        if node not in self.clients:
            self.clients[node] = docker.DockerClient(base_url=self.socket(node), timeout=120)
        return self.clients[node]

    def env(self, node: int = 1) -> dict[str, str]:
        """What a runner that deploys through engine ``node`` sets: DOCKER_HOST and the account."""
        user, password = self.credentials
        return {"DOCKER_HOST": self.socket(node), "BGCI_REGISTRY_USER": user,
                "BGCI_REGISTRY_PASSWORD": password}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()


def script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"`scripts/test-cluster.sh {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr}")
    return proc


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def leftovers() -> list[str]:
    """Namespaces, links, processes, files and the user of the test hosts that exist now."""
    left = []
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=False).stdout
    left += [f"namespace {line.split()[0]}" for line in names.splitlines()
             if line.startswith(f"{PREFIX}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=False).stdout
    left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
             if line.split(":")[1].strip().startswith(f"{PREFIX}-lan")]
    cluster_dir = os.environ.get("BGCI_CLUSTER_DIR", "/var/lib/bgci-cluster")
    made = [Path(cluster_dir), Path(f"/etc/ssh/ssh_config.d/{PREFIX}-cluster.conf")]
    left += [f"file {path}" for path in made if path.exists()]
    if subprocess.run(["getent", "passwd", f"{PREFIX}-deploy"], capture_output=True,
                      check=False).returncode == 0:
        left.append(f"user {PREFIX}-deploy")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if cluster_dir in argv:
                left.append(f"process {proc.name}: {argv[:120]}")
    return left


@contextlib.contextmanager
def cluster_session() -> Iterator[Cluster]:
    """The test hosts for a session: started when not up (and then removed at the end)."""
    assert SCRIPT.is_file(), f"{SCRIPT} is missing"
    was_up = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True,
                            check=False).returncode == 0
    started = time.monotonic()
    proc = script("up", str(NODES), timeout=UP_TIMEOUT)
    cluster = Cluster(parse_env(proc.stdout), up_seconds=time.monotonic() - started)
    try:
        yield cluster
    finally:
        cluster.close()
        if not was_up:
            script("down", timeout=DOWN_TIMEOUT)
            left = leftovers()
            assert not left, f"`test-cluster.sh down` left: {left}"
