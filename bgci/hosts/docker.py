"""A managed router as a container on the app's network, driven only through the engine's API."""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors

from bgci.docker_engine import (
    LABEL,
    engine,
    ensure_bridge,
    ensure_image,
    execute,
    read_file,
    replace_files,
    tar_files,
)
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.ports import RouterSpec


class DockerRouterHost:
    """A managed router as a container on the app's network; driven only through the engine API."""

    local = False
    managed = True

    def __init__(self, client: docker.DockerClient, network: str, app: str,
                 names: Mapping[Colour, str] | None = None) -> None:
        self.client = client
        self.network = network
        self.app = app
        # colour -> container name:port, which a router able to (HAProxy) resolves itself through
        # the network's DNS: container addresses change when the engine restarts, names do not
        self.dns_names: dict[Colour, str] = dict(names or {})

    def path(self, name: str) -> str:
        return posixpath.join("/etc", name)

    def bind(self, spec: RouterSpec, inner: int) -> str:
        return f":{inner}"  # all interfaces of the container; the engine publishes spec.ports

    def _get(self, spec: RouterSpec) -> Any:
        try:
            return self.client.containers.get(spec.name)
        except docker.errors.NotFound:
            return None

    def running(self, spec: RouterSpec) -> bool:
        with engine(f"inspect {spec.name}"):
            container = self._get(spec)
            return container is not None and container.status == "running"

    def labels(self, spec: RouterSpec) -> dict[str, str]:
        with engine(f"inspect {spec.name}"):
            container = self._get(spec)
            return {} if container is None else dict(container.labels)

    def signal(self, spec: RouterSpec, name: str) -> None:
        with engine(f"send SIG{name} to {spec.name}"):
            container = self._get(spec)
            if container is None or container.status != "running":
                raise InfraError(f"router {spec.name} is not running")
            container.kill(signal=f"SIG{name}")

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        ensure_bridge(self.client, self.network, self.app)
        ensure_image(self.client, spec.image, "router")
        with engine(f"start the router {spec.name}"):
            old = self._get(spec)
            # the new router is made (and its files put in) before the old one goes: between the
            # two, only the removal and the start (the published ports can be bound only once)
            staged = f"{spec.name}-next"
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(staged).remove(force=True)  # a run killed here before
            container = self.client.containers.create(
                spec.image,
                command=spec.command,
                name=staged if old is not None else spec.name,
                labels={**spec.labels, f"{LABEL}.app": self.app, f"{LABEL}.role": "router"},
                network=self.network,
                ports={f"{inner}/tcp": outer for inner, outer in spec.ports.items()},
                restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
                detach=True,
            )
            container.put_archive("/", tar_files(files))
            if old is not None:
                old.remove(force=True)
                container.rename(spec.name)
            try:
                container.start()
            except docker.errors.APIError as exc:
                container.remove(force=True)
                raise InfraError(
                    f"router {spec.name} could not start: {exc.explanation}",
                    "is another process using router.listen / router.preview?",
                ) from exc
        log.info(f"router {spec.name} started ({spec.image})")

    def stop(self, spec: RouterSpec, log: Log) -> None:
        with engine(f"stop the router {spec.name}"):
            container = self._get(spec)
            if container is not None and container.status == "running":
                container.stop(timeout=10)  # not removed: its files keep the live colour
                log.info(f"router {spec.name} stopped")

    def destroy(self, spec: RouterSpec, dry_run: bool) -> list[str]:
        done = []
        with engine(f"remove the router {spec.name}"):
            for name in (spec.name, f"{spec.name}-next"):
                with contextlib.suppress(docker.errors.NotFound):
                    container = self.client.containers.get(name)
                    done.append(f"router container {name} ({container.status}; its files with it)")
                    if not dry_run:
                        container.remove(force=True)
        return done

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        with engine(f"write files into {spec.name}"):
            container = self._get(spec)
            if container is None:
                return
            if container.status != "running":
                container.put_archive("/", tar_files(files))
                return
            replace_files(container, files, spec.name)

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        with engine(f"read {path} from {spec.name}"):
            container = self._get(spec)
            return None if container is None else read_file(container, path)

    def remove(self, spec: RouterSpec, path: str) -> None:
        with engine(f"remove {path} from {spec.name}"):
            container = self._get(spec)
            if container is not None and container.status == "running":
                execute(container, ["rm", "-f", path])

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        with engine(f"run a command in {spec.name}"):
            container = self._get(spec)
            if container is None:
                raise InfraError(f"router {spec.name} does not exist")
            return execute(container, argv)
