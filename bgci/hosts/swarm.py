"""A managed router as a Swarm service (the swarm platform's router host).

The service ``bgci-<app>-router`` runs one task of the router image on the app's overlay network,
so it reaches each colour by its service name (DNS round-robin over the colour's tasks, followed
continuously by the router). It is pinned to one node, where router.listen and router.preview are
published in host mode: the live address is that node's address and does not move. The node is
the first node labelled ``org.bgci.router=true``, else the manager bgci talks to; once the service
exists it stays where it is.

Its files (config, live map) live on a volume of that node, ``bgci-<app>-router``, mounted where
the router reads them: a task that Swarm restarts comes back with the live colour it had. bgci
writes them with ``put_archive`` into the running task's container (a temporary name, then a
rename inside: a watching router never reads half a file), or into a never-started helper
container holding the volume when no task runs. Swarm configs are not used for them: a config is
immutable, and swapping it means a rolling update, i.e. restarting the only router task.

Exec and put_archive need the engine of the node the task runs on. When that is not the manager
bgci talks to, the node's label ``org.bgci.engine`` (e.g. ``ssh://deploy@edge-1``) says how to
reach it; ``org.bgci.public-host`` names the host runners reach its published ports by.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors
from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

from bgci.docker_engine import (
    LABEL,
    STATE_IMAGE,
    engine,
    ensure_image,
    ensure_state_image,
    execute,
    read_file,
    replace_files,
    tar_files,
)
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.ports import RouterSpec
from bgci.swarm_engine import (
    SECOND,
    converge,
    ensure_overlay,
    find_service,
    running_tasks,
    scale_down_and_remove,
)

NODE_LABEL = f"{LABEL}.router"  # =true on the node(s) meant for the router
ENGINE_LABEL = f"{LABEL}.engine"  # DOCKER_HOST of that node, for runners talking to another one
PUBLIC_LABEL = f"{LABEL}.public-host"  # host name runners reach the node's published ports by
FILES_LABEL = f"{LABEL}.files"  # service label: where the volume is mounted
START_TIMEOUT = 60.0


def _endpoint(spec: RouterSpec) -> EndpointSpec:
    """DNS round-robin (no virtual IP) and the router's ports published in host mode: on its node
    only, all interfaces (Swarm has no host IP for published ports), no ingress routing mesh."""
    endpoint = EndpointSpec(mode="dnsrr")
    endpoint["Ports"] = [{"Protocol": "tcp", "TargetPort": inner, "PublishedPort": outer,
                          "PublishMode": "host"} for inner, (_, outer) in sorted(spec.ports.items())]
    return endpoint


class SwarmRouterHost:
    local = False
    managed = True

    def __init__(self, client: docker.DockerClient, node_id: str, network: str, app: str,
                 names: Mapping[Colour, str], fallback_public: str) -> None:
        self.client = client  # a manager: services, nodes
        self.node_id = node_id  # that manager's node
        self.network = network
        self.app = app
        self.dns_names: dict[Colour, str] = dict(names)  # DNS round-robin over each colour's tasks
        self.volume = f"bgci-{app}-router"
        self.fallback_public = fallback_public
        self._engines: dict[str, docker.DockerClient] = {}

    # -- where it runs ---------------------------------------------------------------------
    def path(self, name: str) -> str:
        return posixpath.join("/etc", name)

    def bind(self, spec: RouterSpec, inner: int) -> str:
        return f":{inner}"  # all interfaces of the task; Swarm publishes spec.ports on its node

    def _service(self, spec: RouterSpec) -> Any:
        return find_service(self.client, spec.name)

    def _node(self, name: str) -> str:
        """The node router ``name`` runs on (or will): its service's pin, a labelled node, ours."""
        service = find_service(self.client, name)
        if service is not None:
            placement = service.attrs["Spec"]["TaskTemplate"].get("Placement") or {}
            for constraint in placement.get("Constraints") or []:
                key, _, value = constraint.replace(" ", "").partition("==")
                if key == "node.id" and value:
                    return str(value)
        labelled = sorted(
            (n for n in self.client.nodes.list(filters={"node.label": f"{NODE_LABEL}=true"})
             if (n.attrs.get("Status") or {}).get("State") == "ready"),
            key=lambda n: str(n.id))
        return str(labelled[0].id) if labelled else self.node_id

    def _node_labels(self, node_id: str) -> dict[str, str]:
        try:
            labels = self.client.nodes.get(node_id).attrs["Spec"].get("Labels") or {}
        except docker.errors.NotFound:
            return {}
        return {str(k): str(v) for k, v in labels.items()}

    def public_host(self) -> str:
        """The host name runners reach the router's published ports by (router.listen 0.0.0.0)."""
        with engine("find the router's node"):
            node = self._node(f"bgci-{self.app}-router")
            labels = self._node_labels(node)
            if labels.get(PUBLIC_LABEL):
                return labels[PUBLIC_LABEL]
            if node == self.node_id:
                return self.fallback_public
            return str((self.client.nodes.get(node).attrs.get("Status") or {}).get("Addr")
                       or self.fallback_public)

    def _engine(self, node: str) -> docker.DockerClient:
        """The engine of ``node``: ours, or the one its ``org.bgci.engine`` label names."""
        if node == self.node_id:
            return self.client
        if node not in self._engines:
            url = self._node_labels(node).get(ENGINE_LABEL)
            if not url:
                raise InfraError(
                    f"the router of {self.app} runs on swarm node {node}, not on the manager "
                    "DOCKER_HOST points at, and that node has no label "
                    f"{ENGINE_LABEL} saying how to reach its engine",
                    f"`docker node update --label-add {ENGINE_LABEL}=ssh://user@host {node}`, "
                    "or point DOCKER_HOST at that node; nothing was changed")
            try:
                client = docker.DockerClient(base_url=url, timeout=120)
                client.ping()
            except Exception as exc:  # the SDK raises many unrelated types for "not there"
                raise InfraError(f"cannot reach the engine of swarm node {node} at {url} "
                                 f"(label {ENGINE_LABEL}): {exc}") from exc
            self._engines[node] = client
        return self._engines[node]

    def _task_container(self, spec: RouterSpec) -> tuple[Any, docker.DockerClient] | None:
        """The running router task's container and its node's engine, or None."""
        service = self._service(spec)
        if service is None:
            return None
        for task in running_tasks(self.client, service):
            container_id = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
            if not container_id:
                continue
            node_engine = self._engine(str(task.get("NodeID", "")))
            try:
                container = node_engine.containers.get(container_id)
            except docker.errors.NotFound:
                continue
            if container.status == "running":
                return container, node_engine
        return None

    # -- RouterHost ------------------------------------------------------------------------
    def running(self, spec: RouterSpec) -> bool:
        with engine(f"inspect service {spec.name}"):
            return self._task_container(spec) is not None

    def labels(self, spec: RouterSpec) -> dict[str, str]:
        with engine(f"inspect service {spec.name}"):
            service = self._service(spec)
            if service is None:
                return {}
            return {str(k): str(v) for k, v in (service.attrs["Spec"].get("Labels") or {}).items()}

    def shared(self, spec: RouterSpec, *, starting: bool = False) -> str | None:
        return None  # a task may run on any node: nothing of it is on this machine

    def signal(self, spec: RouterSpec, name: str) -> None:
        with engine(f"send SIG{name} to {spec.name}"):
            found = self._task_container(spec)
            if found is None:
                raise InfraError(f"router service {spec.name} has no running task")
            found[0].kill(signal=f"SIG{name}")

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        directory = posixpath.commonpath([posixpath.dirname(p) for p in files])
        ensure_overlay(self.client, self.network, self.app)
        with engine(f"start the router service {spec.name}"):
            node = self._node(spec.name)
            node_engine = self._engine(node)
            ensure_image(node_engine, spec.image, "router")
            old = self._service(spec)
            if old is not None:
                log.info(f"replacing the router service {spec.name} ({old.short_id})")
                scale_down_and_remove(self.client, old, 40)
            self._write_volume(node_engine, directory, files)
            services: Any = self.client.services  # untyped in the stubs
            service = services.create(
                spec.image,
                command=spec.command,
                name=spec.name,
                labels={**spec.labels, f"{LABEL}.app": self.app, f"{LABEL}.role": "router",
                        FILES_LABEL: directory},
                container_labels={f"{LABEL}.app": self.app, f"{LABEL}.role": "router"},
                networks=[self.network],
                endpoint_spec=_endpoint(spec),
                mounts=[Mount(target=directory, source=self.volume, type="volume",
                              labels={f"{LABEL}.app": self.app})],
                constraints=[f"node.id=={node}"],
                mode=ServiceMode("replicated", replicas=1),
                restart_policy=RestartPolicy(condition="any", delay=SECOND),
                stop_grace_period=10 * SECOND,
            )
            try:
                converge(self.client, service, 1, START_TIMEOUT, f"start the router {spec.name}")
            except InfraError as exc:
                raise InfraError(exc.message, "is another process using router.listen / "
                                 "router.preview on the router's node?") from exc
        log.info(f"router service {spec.name} started ({spec.image}) on node {node}")

    def _helper(self, node_engine: docker.DockerClient, directory: str, read_only: bool) -> Any:
        """A never-started container holding the router's volume, to reach its files."""
        ensure_state_image(node_engine)
        return node_engine.containers.create(
            STATE_IMAGE,
            mounts=[Mount(target=directory, source=self.volume, type="volume",
                          read_only=read_only)],
            labels={f"{LABEL}.app": self.app, f"{LABEL}.role": "router-files"},
        )

    def _write_volume(self, node_engine: docker.DockerClient, directory: str,
                      files: Mapping[str, bytes]) -> None:
        helper = self._helper(node_engine, directory, read_only=False)
        try:
            helper.put_archive("/", tar_files(files))
        finally:
            helper.remove(force=True, v=False)

    def _directory(self, spec: RouterSpec) -> str | None:
        service = self._service(spec)
        if service is None:
            return None
        return (service.attrs["Spec"].get("Labels") or {}).get(FILES_LABEL) or None

    def stop(self, spec: RouterSpec, log: Log) -> None:
        with engine(f"stop the router service {spec.name}"):
            service = self._service(spec)
            mode = (service.attrs["Spec"].get("Mode") or {}) if service is not None else {}
            if service is not None and mode.get("Replicated", {}).get("Replicas"):
                service.scale(0)  # not removed: its volume keeps the live colour
                log.info(f"router service {spec.name} scaled to zero")

    def destroy(self, spec: RouterSpec, dry_run: bool) -> list[str]:
        done = []
        with engine(f"remove the router service {spec.name}"):
            service = self._service(spec)
            node_engine = self._engine(self._node(spec.name))  # where its volume is
            if service is not None:
                done.append(f"router service {spec.name}")
                if not dry_run:
                    scale_down_and_remove(self.client, service, START_TIMEOUT)
            for volume in node_engine.volumes.list(filters={"name": self.volume}):
                if volume.name == self.volume:
                    done.append(f"volume {self.volume} (the router's files)")
                    if not dry_run:
                        for helper in node_engine.containers.list(
                                all=True, filters={"volume": self.volume}):
                            helper.remove(force=True)
                        volume.remove(force=True)
        return done

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        with engine(f"write files into {spec.name}"):
            found = self._task_container(spec)
            if found is None:
                directory = self._directory(spec)
                if directory is not None:
                    self._write_volume(self._engine(self._node(spec.name)), directory, files)
                return
            replace_files(found[0], files, spec.name)

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        with engine(f"read {path} from {spec.name}"):
            found = self._task_container(spec)
            if found is not None:
                return read_file(found[0], path)
            directory = self._directory(spec)
            if directory is None or not path.startswith(directory + "/"):
                return None
            node_engine = self._engine(self._node(spec.name))
            if not node_engine.volumes.list(filters={"name": self.volume}):
                return None
            helper = self._helper(node_engine, directory, read_only=True)
            try:
                return read_file(helper, path)
            finally:
                helper.remove(force=True, v=False)

    def remove(self, spec: RouterSpec, path: str) -> None:
        with engine(f"remove {path} from {spec.name}"):
            found = self._task_container(spec)
            if found is not None:
                execute(found[0], ["rm", "-f", path])

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        with engine(f"run a command in {spec.name}"):
            found = self._task_container(spec)
            if found is None:
                raise InfraError(f"router service {spec.name} has no running task")
            return execute(found[0], argv)

    def close(self) -> None:
        for client in self._engines.values():
            client.close()
        self._engines.clear()
