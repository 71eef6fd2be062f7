"""The docker platform: each colour a labelled container, everything through the engine's API.

``DOCKER_HOST`` is honoured (local socket, ``tcp://`` or ``ssh://``): the colours, the managed
router and the state all live on that engine, so any runner that reaches it can run any stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors

from bgci import crash
from bgci.docker_engine import (
    LABEL,
    decoded,
    engine,
    ensure_bridge,
    logs_after,
    remove_app_objects,
    run_one_off,
    spec_label,
    spec_of,
    volume_binds,
)
from bgci.docker_images import EngineReleases
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour, ColourSpec, Instance, Release
from bgci.settings import Config

FAILURE_LINES = 15  # of a crashed colour's output, in the failure message


class DockerPlatform(EngineReleases):
    """Colours as containers ``<app>-blue`` / ``<app>-green`` on the network ``bgci-<app>``."""

    name = "docker"

    def __init__(self, config: Config, client: docker.DockerClient) -> None:
        self.config = config
        self.app = config.app
        self.client = client
        self.network = f"bgci-{self.app}"

    # -- colours ---------------------------------------------------------------------------
    def _container(self, name: str) -> Any:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def spec(self) -> ColourSpec:
        return ColourSpec(port=self.config.platform.port, env=dict(self.config.platform.env),
                          volumes=dict(self.config.platform.volumes))

    def start(self, colour: Colour, release: Release, spec: ColourSpec, log: Log) -> Instance:
        ensure_bridge(self.client, self.network, self.app)
        name = f"{self.app}-{colour}"
        port = spec.port
        binds = volume_binds(self.client, self.app, spec.volumes)
        with engine(f"start {name}"):
            old = self._container(name)
            if old is not None:
                log.info(f"removing the previous {colour} container ({old.short_id})")
                old.stop(timeout=int(min(self.config.switch.drain, 10)))
                old.remove(force=True)
            env = {**spec.env, "BGCI_COLOR": colour, "BGCI_APP": self.app, "PORT": str(port)}
            container = self.client.containers.create(
                release.digest or release.image,
                name=name,
                environment=env,
                labels={f"{LABEL}.app": self.app, f"{LABEL}.role": "colour",
                        f"{LABEL}.colour": colour, f"{LABEL}.image": release.image,
                        f"{LABEL}.digest": release.digest, f"{LABEL}.started": str(time.time()),
                        f"{LABEL}.spec": spec_label(spec)},
                network=self.network, volumes=binds,
                ports={f"{port}/tcp": ("127.0.0.1", None)},  # type: ignore[dict-item]  # any free port
                restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
                detach=True,
            )
            container.start()
            container.reload()
        instance = self._instance(container)
        if instance is None:
            raise InfraError(f"{name} started but has no address on network {self.network}")
        log.info(f"{colour}: started {container.short_id} running {release.short}")
        return instance

    def _instance(self, container: Any) -> Instance | None:
        labels = container.labels
        colour = labels.get(f"{LABEL}.colour")
        if colour not in COLOURS:
            return None
        spec = spec_of(labels)
        exposed = sorted(container.attrs["Config"].get("ExposedPorts") or {})
        # a colour started by bgci 0.1 recorded no spec: its one exposed port is the app's
        port = spec.port if spec else int(exposed[0].split("/")[0]) if exposed else 0
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp") or []
        direct = f"http://127.0.0.1:{bindings[0]['HostPort']}" if bindings else ""
        return Instance(
            colour=colour,
            release=Release(labels.get(f"{LABEL}.image", ""), labels.get(f"{LABEL}.digest", "")),
            # by name on the app's network: the router resolves it (addresses change when the
            # engine restarts, names do not)
            address=f"{container.name}:{port}" if port else "",
            running=container.status == "running",
            started_at=float(labels.get(f"{LABEL}.started") or 0),
            direct_url=direct,
            spec=spec,
        )

    def instances(self) -> dict[Colour, Instance]:
        found: dict[Colour, Instance] = {}
        with engine("list containers"):
            for container in self.client.containers.list(
                all=True, filters={"label": [f"{LABEL}.app={self.app}", f"{LABEL}.role=colour"]}
            ):
                instance = self._instance(container)
                if instance is not None:
                    found[instance.colour] = instance
        return found

    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        name = f"{self.app}-{colour}"
        with engine(f"stop {name}"):
            container = self._container(name)
            if container is None:
                return
            log.info(f"{colour}: stopping {container.short_id} (SIGTERM, up to {grace:.0f}s)")
            container.stop(timeout=int(grace))
            container.remove(force=True)

    def run_once(self, release: Release, command: str, env: dict[str, str], timeout: float, *,
                 spec: ColourSpec | None = None,
                 echo: Callable[[str], None] | None = None) -> tuple[int, str]:
        ensure_bridge(self.client, self.network, self.app)
        return run_one_off(self.client, self.config, self.network, release, command, env, timeout,
                           spec=spec, echo=echo)

    def failure(self, colour: Colour) -> str:
        name = f"{self.app}-{colour}"
        with engine(f"inspect {name}"):
            container = self._container(name)
            if container is None:
                return f"container {name} does not exist"
            state = container.attrs.get("State") or {}
            restarts = int(container.attrs.get("RestartCount") or 0)
            if state.get("Status") == "running" and not state.get("Restarting"):
                return ""  # (a crash loop is "restarting" most of the time: the next look)
            output = bytes(container.logs(tail=400)).decode("utf-8", "replace")
        loop = f", restarted {restarts} times and still failing" if restarts else ""
        return crash.describe(f"container {name} exited with code {state.get('ExitCode')}{loop}",
                              output, FAILURE_LINES)

    def output_after(self, colour: Colour, cursor: str) -> tuple[str, str]:
        with engine("read container logs"):
            container = self._container(f"{self.app}-{colour}")
            if container is None:
                return "", cursor
            return logs_after(container.logs, cursor)

    def logs(self, colour: Colour, lines: int = 40) -> str:
        with engine("read container logs"):
            container = self._container(f"{self.app}-{colour}")
            if container is None:
                return ""
            return bytes(container.logs(tail=lines)).decode("utf-8", "replace")

    def output(self, colour: Colour, *, tail: int | None, since: float | None,
               follow: bool) -> Iterator[str]:
        name = f"{self.app}-{colour}"
        with engine(f"read the logs of {name}"):
            container = self._container(name)
            if container is None:
                return
            yield from decoded(container.logs(stream=True, follow=follow,
                                              tail="all" if tail is None else tail,
                                              since=int(since) if since else None))

    def destroy(self, dry_run: bool) -> list[str]:
        with engine(f"remove the containers and network of {self.app}"):
            return remove_app_objects(self.client, self.app, self.network,
                                      ("colour", "one-off", "hook"), dry_run,
                                      lambda network: network.remove())
