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
(``build.push``): every node can pull them. An image that only exists on the engine bgci talks to
is run by its ID, which suits a single-node swarm only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from bgci.config import Config
from bgci.errors import CheckFailed, InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour, Instance, Release
from bgci.platforms.docker import LABEL, DockerPlatform, engine

if TYPE_CHECKING:
    from bgci.routers.swarmhost import SwarmRouterHost
    from bgci.state.swarm import SwarmStore

SECOND = 1_000_000_000  # Swarm durations are nanoseconds
ACTIVE_STATES = frozenset({"new", "pending", "assigned", "accepted", "ready", "preparing",
                           "starting", "running"})
FAILED_STATES = frozenset({"failed", "rejected"})
CONVERGE_MIN = 60.0  # seconds a service may take to run all its tasks (image pulls included)


def manager_node(client: docker.DockerClient) -> str:
    """The node ID of the engine ``client`` talks to; InfraError unless it is a swarm manager."""
    with engine("ask the engine about its swarm"):
        swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        state = swarm.get("LocalNodeState") or "unknown"
        raise InfraError(
            f"platform.kind = \"swarm\" needs DOCKER_HOST to be a swarm manager; this engine's "
            f"swarm state is {state!r}{'' if swarm.get('ControlAvailable') else ' (not a manager)'}",
            "point DOCKER_HOST at a manager (`docker node ls` works there), or run "
            "`docker swarm init` for a single-node swarm; nothing was changed",
        )
    return str(swarm.get("NodeID", ""))


def find_service(client: docker.DockerClient, name: str) -> Any:
    """The service named exactly ``name``, or None."""
    services: Any = client.services  # untyped in the stubs
    try:
        service = services.get(name)
    except docker.errors.NotFound:
        return None
    return service if service.name == name else None


def tasks_of(client: docker.DockerClient, service: Any) -> list[dict[str, Any]]:
    api: Any = client.api  # untyped in the stubs
    try:
        tasks: list[dict[str, Any]] = api.tasks(filters={"service": service.id})
    except docker.errors.NotFound:  # the service is gone, and its tasks with it
        return []
    return [t for t in tasks if t.get("ServiceID") == service.id]


def running_tasks(client: docker.DockerClient, service: Any) -> list[dict[str, Any]]:
    return [t for t in tasks_of(client, service)
            if t.get("DesiredState") == "running" and t["Status"].get("State") == "running"]


def _task_problem(task: dict[str, Any]) -> str:
    status = task.get("Status") or {}
    return f"{status.get('State')}: {status.get('Err') or status.get('Message') or '?'}"


def converge(client: docker.DockerClient, service: Any, replicas: int, timeout: float,
             what: str) -> list[dict[str, Any]]:
    """Wait until ``replicas`` tasks of ``service`` run; CheckFailed when they keep failing."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = tasks_of(client, service)
        running = [t for t in tasks if t.get("DesiredState") == "running"
                   and t["Status"].get("State") == "running"]
        if len(running) >= replicas:
            return running
        failed = [t for t in tasks if t["Status"].get("State") in FAILED_STATES]
        if len(failed) >= max(replicas, 2):
            problems = sorted({_task_problem(t) for t in failed})
            raise CheckFailed(f"{what}: tasks of service {service.name} keep failing: "
                              f"{'; '.join(problems)[:500]}",
                              f"`docker service ps --no-trunc {service.name}` shows them")
        if time.monotonic() > deadline:
            waiting = sorted({_task_problem(t) for t in tasks
                              if t["Status"].get("State") != "running"})
            raise InfraError(f"{what}: {len(running)} of {replicas} tasks of service "
                             f"{service.name} running after {timeout:.0f}s; others: "
                             f"{'; '.join(waiting)[:500] or 'none scheduled'}",
                             "is there a node with room for them (`docker node ls`)?")
        time.sleep(0.25)


def scale_down_and_remove(client: docker.DockerClient, service: Any, timeout: float) -> None:
    """Drain then scale to zero: every task gets SIGTERM and the service's stop grace period;
    the service is removed once none of its tasks is active (its ports and name are free)."""
    mode = service.attrs["Spec"].get("Mode") or {}
    if mode.get("Replicated", {}).get("Replicas") != 0:
        try:
            service.scale(0)
        except docker.errors.NotFound:
            return
    deadline = time.monotonic() + timeout
    while any(t["Status"].get("State") in ACTIVE_STATES for t in tasks_of(client, service)):
        if time.monotonic() > deadline:
            break  # removing the service stops what is left
        time.sleep(0.25)
    try:
        service.remove()
    except docker.errors.NotFound:
        return
    # the task containers go asynchronously: wait, so a new service can take the name and ports
    while tasks_of(client, service) and time.monotonic() < deadline + 30:
        time.sleep(0.25)


class SwarmPlatform(DockerPlatform):
    """Colours as Swarm services on the overlay network ``bgci-<app>`` (see the module doc)."""

    name = "swarm"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.node_id = manager_node(self.client)
        self.replicas = config.platform.replicas
        self._host: SwarmRouterHost | None = None

    def _ensure_network(self) -> None:
        with engine(f"create overlay network {self.network}"):
            found = [n for n in self.client.networks.list(names=[self.network])
                     if n.name == self.network]
            if found:
                driver = found[0].attrs.get("Driver")
                if driver != "overlay":
                    raise InfraError(
                        f"network {self.network} exists with driver {driver!r}, not overlay "
                        "(left by platform.kind = \"docker\"?)",
                        f"`bgci down` with the docker platform, then `docker network rm "
                        f"{self.network}`; nothing was changed")
                return
            try:
                self.client.networks.create(self.network, driver="overlay", attachable=True,
                                            check_duplicate=True,
                                            labels={f"{LABEL}.app": self.app})
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # another runner created it a moment ago
                    raise

    def _service_image(self, release: Release, log: Log) -> str:
        """What the nodes run: the registry digest when there is one, else the local image ID."""
        try:
            image = self.client.images.get(release.digest or release.image)
        except docker.errors.ImageNotFound:
            return release.image  # not on this engine: each node pulls it
        head, _, tail = release.image.rpartition(":")
        repo = head if head and "/" not in tail else release.image
        for digest in image.attrs.get("RepoDigests") or []:
            if digest.split("@")[0] == repo:
                return str(digest)
        nodes = int((self.client.info().get("Swarm") or {}).get("Nodes") or 1)
        if nodes > 1:
            log.info(f"{release.image} has no registry digest (build.push = false): only nodes "
                     "that already have it can run it")
        return str(image.id)

    def _colour_service(self, colour: Colour) -> Any:
        return find_service(self.client, f"{self.app}-{colour}")

    def start(self, colour: Colour, release: Release, log: Log) -> Instance:
        self._ensure_network()
        name = f"{self.app}-{colour}"
        grace = max(1.0, self.config.switch.drain)
        timeout = max(CONVERGE_MIN, self.config.health.deadline)
        with engine(f"start service {name}"):
            old = self._colour_service(colour)
            if old is not None:
                log.info(f"{colour}: draining and removing the previous service {name} "
                         f"({old.short_id})")
                scale_down_and_remove(self.client, old, grace + 30)
            port = self.config.platform.port
            env = {**self.config.platform.env, "BGCI_COLOR": colour, "BGCI_APP": self.app,
                   "PORT": str(port)}
            labels = {f"{LABEL}.app": self.app, f"{LABEL}.role": "colour",
                      f"{LABEL}.colour": colour, f"{LABEL}.image": release.image,
                      f"{LABEL}.digest": release.digest, f"{LABEL}.started": str(time.time())}
            services: Any = self.client.services  # untyped in the stubs
            service = services.create(
                self._service_image(release, log),
                name=name,
                env=env,
                labels=labels,
                container_labels=labels,
                networks=[self.network],
                endpoint_spec=EndpointSpec(mode="dnsrr"),
                mode=ServiceMode("replicated", replicas=self.replicas),
                stop_grace_period=int(grace * SECOND),
                restart_policy=RestartPolicy(condition="any", delay=SECOND),
            )
            log.info(f"{colour}: service {name} created ({service.short_id}), waiting for "
                     f"{self.replicas} task(s)")
            converge(self.client, service, self.replicas, timeout, f"start {release.short}")
            service.reload()
            instance = self._instance(service)
        if instance is None:
            raise InfraError(f"service {name} started but lost its labels")
        log.info(f"{colour}: {self.replicas} task(s) of {name} run {release.short}")
        return instance

    def _instance(self, service: Any) -> Instance | None:
        labels = service.attrs["Spec"].get("Labels") or {}
        colour = labels.get(f"{LABEL}.colour")
        if colour not in COLOURS:
            return None
        replicas = (service.attrs["Spec"].get("Mode") or {}).get("Replicated", {}).get("Replicas")
        running = bool(replicas) and bool(running_tasks(self.client, service))
        return Instance(
            colour=colour,
            release=Release(labels.get(f"{LABEL}.image", ""), labels.get(f"{LABEL}.digest", "")),
            address=f"{self.app}-{colour}:{self.config.platform.port}",  # DNS round-robin
            running=running,
            started_at=float(labels.get(f"{LABEL}.started") or 0),
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

    def logs(self, colour: Colour, lines: int = 40) -> str:
        with engine("read service logs"):
            service = self._colour_service(colour)
            if service is None:
                return ""
            chunks = service.logs(stdout=True, stderr=True, tail=lines)
            return b"".join(chunks).decode("utf-8", "replace")

    def store(self) -> SwarmStore:  # type: ignore[override]  # see router_host
        from bgci.state.swarm import SwarmStore

        return SwarmStore(self.client, self.app)

    # the docker platform's store and router host are other classes than these: same protocols
    def router_host(self) -> SwarmRouterHost:  # type: ignore[override]
        self._ensure_network()
        return self._router_host()

    def _router_host(self) -> SwarmRouterHost:
        if self._host is None:
            from bgci.routers.swarmhost import SwarmRouterHost

            names = {c: f"{self.app}-{c}:{self.config.platform.port}" for c in COLOURS}
            self._host = SwarmRouterHost(self.client, self.node_id, self.network, self.app, names,
                                         fallback_public=super().public_host())
        return self._host

    def public_host(self) -> str:
        return self._router_host().public_host()

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        super().close()
