"""The swarm platform: each colour a Swarm service, the router a Swarm service, state in configs.

- Colours are the services ``<app>-blue`` / ``<app>-green``, ``platform.replicas`` tasks each, on
  the attachable overlay network ``bgci-<app>`` with endpoint mode ``dnsrr``: inside that network
  the name ``<app>-<colour>`` resolves to the addresses of the colour's running tasks, on every
  node. (Swarm's virtual IPs and ingress routing mesh are not used: DNS round-robin needs nothing
  but the overlay, and the router spreads the load itself.) The service labels carry colour,
  image, digest and start time.
- A new release replaces a colour as drain, scale to zero, remove, create: old and new tasks never
  serve side by side, so a health check that passes was answered by the new release.
- The managed router is a service too (``bgci.routers.swarmhost``); the state and deploy lock are
  Swarm configs (``bgci.state.swarm``), so any manager of the swarm sees the same deployment.

``DOCKER_HOST`` must point at a manager. Images are run by registry digest when they have one
(``build.push``, or an image pulled from a registry): every node pulls that very image, with the
registry account of the environment (``BGCI_REGISTRY_USER``/``BGCI_REGISTRY_PASSWORD``) passed
along with the service. An image that only exists on the engine bgci talks to is run by its ID,
which suits a single-node swarm only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from bgci import crash
from bgci.docker_engine import (
    LABEL,
    decoded,
    engine,
    logs_after,
    remove_app_objects,
    run_one_off,
    spec_label,
    spec_of,
)
from bgci.docker_images import EngineReleases, log_in, repository
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour, ColourSpec, Instance, Release
from bgci.settings import Config
from bgci.swarm_engine import (
    FAILED_STATES,
    SECOND,
    converge,
    ensure_overlay,
    find_service,
    running_tasks,
    scale_down_and_remove,
    tasks_of,
)

CONVERGE_MIN = 60.0  # seconds a service may take to run all its tasks (image pulls included)


def _env_port(service: Any) -> int:
    """The PORT a service started by bgci 0.1 (which recorded no spec) gives its app."""
    container = service.attrs["Spec"]["TaskTemplate"].get("ContainerSpec") or {}
    for item in container.get("Env") or []:
        name, _, value = str(item).partition("=")
        if name == "PORT" and value.isdigit():
            return int(value)
    return 0


class SwarmPlatform(EngineReleases):
    """Colours as Swarm services on the overlay network ``bgci-<app>`` (see the module doc)."""

    name = "swarm"

    def __init__(self, config: Config, client: docker.DockerClient) -> None:
        self.config = config
        self.app = config.app
        self.client = client  # a manager's engine (bgci.registry checks it is one)
        self.network = f"bgci-{self.app}"

    def run_once(self, release: Release, command: str, env: dict[str, str], timeout: float, *,
                 spec: ColourSpec | None = None,
                 echo: Callable[[str], None] | None = None) -> tuple[int, str]:
        ensure_overlay(self.client, self.network, self.app)  # attachable: a container may join
        return run_one_off(self.client, self.config, self.network, release, command, env, timeout,
                           spec=spec, echo=echo)

    def _service_image(self, release: Release, log: Log) -> str:
        """What the nodes run: the registry digest when there is one, else the local image ID."""
        if "@" in release.image:  # pushed (build.push) or pulled: each node pulls that image
            log_in(self.client, release.image)  # the service carries the account to the nodes
            return release.image
        try:
            image = self.client.images.get(release.digest or release.image)
        except docker.errors.ImageNotFound:
            return release.image  # not on this engine: each node pulls it
        repo = repository(release.image)
        for digest in image.attrs.get("RepoDigests") or []:
            if digest.split("@")[0] == repo:
                log_in(self.client, release.image)
                return str(digest)
        nodes = int((self.client.info().get("Swarm") or {}).get("Nodes") or 1)
        if nodes > 1:
            log.info(f"{release.image} has no registry digest (build.push = false): only nodes "
                     "that already have it can run it")
        return str(image.id)

    def _colour_service(self, colour: Colour) -> Any:
        return find_service(self.client, f"{self.app}-{colour}")

    def spec(self) -> ColourSpec:
        return ColourSpec(port=self.config.platform.port, env=dict(self.config.platform.env),
                          replicas=self.config.platform.replicas)

    def start(self, colour: Colour, release: Release, spec: ColourSpec, log: Log) -> Instance:
        ensure_overlay(self.client, self.network, self.app)
        name = f"{self.app}-{colour}"
        grace = max(1.0, self.config.switch.drain)
        timeout = max(CONVERGE_MIN, self.config.health.deadline)
        with engine(f"start service {name}"):
            old = self._colour_service(colour)
            if old is not None:
                log.info(f"{colour}: draining and removing the previous service {name} "
                         f"({old.short_id})")
                scale_down_and_remove(self.client, old, grace + 30)
            env = {**spec.env, "BGCI_COLOR": colour, "BGCI_APP": self.app,
                   "PORT": str(spec.port)}
            labels = {f"{LABEL}.app": self.app, f"{LABEL}.role": "colour",
                      f"{LABEL}.colour": colour, f"{LABEL}.image": release.image,
                      f"{LABEL}.digest": release.digest, f"{LABEL}.started": str(time.time()),
                      f"{LABEL}.spec": spec_label(spec)}
            services: Any = self.client.services  # untyped in the stubs
            service = services.create(
                self._service_image(release, log),
                name=name,
                env=env,
                labels=labels,
                container_labels=labels,
                networks=[self.network],
                endpoint_spec=EndpointSpec(mode="dnsrr"),
                mode=ServiceMode("replicated", replicas=spec.replicas),
                stop_grace_period=int(grace * SECOND),
                restart_policy=RestartPolicy(condition="any", delay=SECOND),
            )
            log.info(f"{colour}: service {name} created ({service.short_id}), waiting for "
                     f"{spec.replicas} task(s)")
            converge(self.client, service, spec.replicas, timeout, f"start {release.short}")
            service.reload()
            instance = self._instance(service)
        if instance is None:
            raise InfraError(f"service {name} started but lost its labels")
        log.info(f"{colour}: {spec.replicas} task(s) of {name} run {release.short}")
        return instance

    def _instance(self, service: Any) -> Instance | None:
        labels = service.attrs["Spec"].get("Labels") or {}
        colour = labels.get(f"{LABEL}.colour")
        if colour not in COLOURS:
            return None
        replicas = (service.attrs["Spec"].get("Mode") or {}).get("Replicated", {}).get("Replicas")
        running = bool(replicas) and bool(running_tasks(self.client, service))
        spec = spec_of(labels)
        return Instance(
            colour=colour,
            release=Release(labels.get(f"{LABEL}.image", ""), labels.get(f"{LABEL}.digest", "")),
            address=f"{self.app}-{colour}:{spec.port if spec else _env_port(service)}",  # DNS RR
            running=running,
            started_at=float(labels.get(f"{LABEL}.started") or 0),
            spec=spec,
        )

    def instances(self) -> dict[Colour, Instance]:
        found: dict[Colour, Instance] = {}
        with engine("list services"):
            for service in self.client.services.list(
                filters={"label": [f"{LABEL}.app={self.app}", f"{LABEL}.role=colour"]}
            ):
                instance = self._instance(service)
                if instance is not None and service.name == f"{self.app}-{instance.colour}":
                    found[instance.colour] = instance
        return found

    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        with engine(f"stop service {self.app}-{colour}"):
            service = self._colour_service(colour)
            if service is None:
                return
            log.info(f"{colour}: draining, scaling {service.name} to zero and removing it")
            scale_down_and_remove(self.client, service, max(grace, 1.0) + 30)

    def failure(self, colour: Colour) -> str:
        with engine(f"inspect service {self.app}-{colour}"):
            service = self._colour_service(colour)
            if service is None:
                return f"service {self.app}-{colour} does not exist"
            failed = [t for t in tasks_of(self.client, service)
                      if t["Status"].get("State") in FAILED_STATES]
        if len(failed) < 2:  # one failed task may be a node's hiccup: Swarm starts another
            return ""
        errors = sorted({str(t["Status"].get("Err") or t["Status"].get("Message") or "?")
                         for t in failed})
        return crash.describe(f"{len(failed)} tasks of service {self.app}-{colour} failed "
                              f"({'; '.join(errors)[:300]})", self.logs(colour, 400), 15)

    def output_after(self, colour: Colour, cursor: str) -> tuple[str, str]:
        with engine("read service logs"):
            service = self._colour_service(colour)
            if service is None:
                return "", cursor
            return logs_after(lambda **kw: service.logs(stdout=True, stderr=True, **kw), cursor)

    def logs(self, colour: Colour, lines: int = 40) -> str:
        with engine("read service logs"):
            service = self._colour_service(colour)
            if service is None:
                return ""
            chunks = service.logs(stdout=True, stderr=True, tail=lines)
            return b"".join(chunks).decode("utf-8", "replace")

    def output(self, colour: Colour, *, tail: int | None, since: float | None,
               follow: bool) -> Iterator[str]:
        with engine(f"read the logs of service {self.app}-{colour}"):
            service = self._colour_service(colour)
            if service is None:
                return
            yield from decoded(service.logs(stdout=True, stderr=True, follow=follow,
                                            tail="all" if tail is None else tail,
                                            since=int(since) if since else None))

    def destroy(self, dry_run: bool) -> list[str]:
        done: list[str] = []
        with engine(f"remove the services, containers and network of {self.app}"):
            for service in self.client.services.list(filters={"label": [
                    f"{LABEL}.app={self.app}", f"{LABEL}.role=colour"]}):
                done.append(f"service {service.name}")
                if not dry_run:
                    scale_down_and_remove(self.client, service, 30.0)
            done += remove_app_objects(self.client, self.app, self.network, ("one-off", "hook"),
                                       dry_run, _remove_network)
        return done


def _remove_network(network: Any) -> None:
    """Remove an overlay network once the tasks of the services just removed have left it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:  # "has active endpoints" for a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
