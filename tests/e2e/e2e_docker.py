"""The docker platform of the end-to-end suite: the example app's images, built once per session
through ``bgci build``, and the ``Target`` that deploys them to the engine and cleans up after."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import docker.errors
from e2e_support import COLOURS, RELEASES, STAGE_TIMEOUT, Run, bgci_argv, clean_env, unique_app

from bgci.hosts.docker import shared_dir
from tests.helpers.images import make_app_copy, test_env


class DockerReleases:
    """The example app's images, built once per session through ``bgci build --tag NAME``.

    Built on first use, so a run of one test builds only what it needs; removed at the end."""

    def __init__(self, client: Any, workdir: Path) -> None:
        self.client = client
        self.workdir = workdir
        self.app = unique_app("e2e-build")
        self.repo = f"bgci-e2e/{self.app}"
        self.built: dict[str, tuple[str, str]] = {}  # name -> (ref, digest)

    def build(self, name: str) -> tuple[str, str]:
        if name not in self.built:
            version, unhealthy = RELEASES[name]
            src = make_app_copy(self.workdir / name, version,
                                {"app": self.app, "build.image": self.repo}, unhealthy=unhealthy)
            started = time.monotonic()
            proc = subprocess.run([*bgci_argv(), "build", "--tag", name], cwd=src,
                                  env=clean_env(), capture_output=True, text=True,
                                  timeout=STAGE_TIMEOUT, check=False)
            run = Run(("build", "--tag", name), proc.returncode, proc.stdout, proc.stderr,
                      time.monotonic() - started)
            ref = f"{self.repo}:{name}"
            # registered before the checks: a half-made image is removed too
            self.built[name] = (ref, "")
            assert run.code == 0, f"building release {name} failed:\n{run}"
            result = json.loads((src / "bgci-reports" / "build.json").read_text(encoding="utf-8"))
            assert result["image"] == ref, result
            assert result["digest"] == self.client.images.get(ref).id, result
            self.built[name] = (ref, result["digest"])
        return self.built[name]

    def cleanup(self) -> None:
        left = []
        for ref, _ in self.built.values():
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.images.remove(ref, force=True)
            try:
                self.client.images.get(ref)
                left.append(ref)
            except docker.errors.ImageNotFound:
                pass
        assert not left, f"images left behind: {left}"


class DockerTarget:
    """Colours as containers on the engine at DOCKER_HOST, router and state there too."""

    kind = "docker"

    def __init__(self, client: Any, releases: DockerReleases) -> None:
        self.client = client
        self.releases = releases
        self.config_overrides: dict[str, Any] = {
            "platform": {"kind": "docker", "port": 8000},
            "router": {"kind": "haproxy", "image": test_env()["BGCI_TEST_HAPROXY_IMAGE"]},
        }
        self.env: dict[str, str] = {}
        self.apps: list[str] = []

    def release(self, name: str) -> str:
        return self.releases.build(name)[0]

    def digest(self, name: str) -> str:
        return self.releases.build(name)[1]

    def version(self, name: str) -> str:
        return RELEASES[name][0]

    def adopt(self, app: str) -> None:
        self.apps.append(app)

    def _containers(self, app: str) -> list[Any]:
        return list(self.client.containers.list(all=True,
                                                filters={"label": f"org.bgci.app={app}"}))

    def running(self, app: str) -> dict[str, str]:
        found = {}
        for container in self._containers(app):
            colour = container.labels.get("org.bgci.colour")
            if colour in COLOURS and container.status == "running":
                found[colour] = container.id
        return found

    def snapshot(self, app: str) -> list[tuple[str, ...]]:
        items = [("container", c.name, c.id, c.status, c.image.id) for c in self._containers(app)]
        items += [("network", n.name, n.id) for n in self._networks(app)]
        items += [("volume", v.name) for v in self._volumes(app)]
        return sorted(items)

    def _networks(self, app: str) -> list[Any]:
        return [n for n in self.client.networks.list(names=[f"bgci-{app}"])
                if n.name == f"bgci-{app}"]

    def _volumes(self, app: str) -> list[Any]:
        return [v for v in self.client.volumes.list(filters={"name": f"bgci-{app}-state"})
                if v.name == f"bgci-{app}-state"]

    def cleanup(self) -> None:
        left: list[str] = []
        for app in self.apps:
            names = [f"{app}-blue", f"{app}-green", f"bgci-{app}-router", f"bgci-{app}-state",
                     f"bgci-{app}-lock"]
            for container in self._containers(app):
                container.remove(force=True, v=True)
            for name in names:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.containers.get(name).remove(force=True, v=True)
            for network in self._networks(app):
                network.remove()
            for volume in self._volumes(app):
                volume.remove(force=True)
            shutil.rmtree(shared_dir(f"bgci-{app}-router"), ignore_errors=True)
            left += [f"container {c.name}" for c in self._containers(app)]
            for name in names:
                try:
                    self.client.containers.get(name)
                    left.append(f"container {name}")
                except docker.errors.NotFound:
                    pass
            left += [f"network {n.name}" for n in self._networks(app)]
            left += [f"volume {v.name}" for v in self._volumes(app)]
        self.apps.clear()
        assert not left, f"left behind on the engine: {left}"
