"""Docker Swarm as the swarm adapters reach it: the manager, services, their tasks, overlays.

Shared by the swarm platform and the swarm router host (neither imports the other). Everything
goes through a manager's engine API (``bgci.docker_engine``).
"""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors

from bgci.docker_engine import LABEL, engine
from bgci.errors import CheckFailed, InfraError

SECOND = 1_000_000_000  # Swarm durations are nanoseconds
ACTIVE_STATES = frozenset({"new", "pending", "assigned", "accepted", "ready", "preparing",
                           "starting", "running"})
FAILED_STATES = frozenset({"failed", "rejected"})
REAP_WAIT = 10.0  # seconds Swarm may take to delete the stopped tasks of a scaled-down service


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
    the service is removed once its tasks are gone (its ports and name are free).

    Swarm deletes a scaled-down task about half a second after it has stopped. Removing the
    service inside that window crashes Docker 20.10's swarm manager (a nil task in swarmkit's
    SetServiceTasksRemove: the engine panics and every container it runs goes down with it),
    so the service is removed only once those tasks are gone."""
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
    wait_reaped(client, service, deadline + REAP_WAIT)
    try:
        service.remove()
    except docker.errors.NotFound:
        return
    # the task containers go asynchronously: wait, so a new service can take the name and ports
    while tasks_of(client, service) and time.monotonic() < deadline + 30:
        time.sleep(0.25)


def wait_reaped(client: docker.DockerClient, service: Any, until: float) -> None:
    """Until Swarm has deleted the tasks the scale-down marked for removal (or ``until``); the
    older tasks it keeps as history are not marked and stay."""
    while time.monotonic() < until and any(
            t.get("DesiredState") == "remove" for t in tasks_of(client, service)):
        time.sleep(0.25)


def ensure_overlay(client: docker.DockerClient, name: str, app: str) -> None:
    """The app's attachable overlay network ``name`` (created when missing; InfraError when a
    network of that name has another driver)."""
    with engine(f"create overlay network {name}"):
        found = [n for n in client.networks.list(names=[name]) if n.name == name]
        if found:
            driver = found[0].attrs.get("Driver")
            if driver != "overlay":
                raise InfraError(
                    f"network {name} exists with driver {driver!r}, not overlay "
                    "(left by platform.kind = \"docker\"?)",
                    f"`bgci down` with the docker platform, then `docker network rm "
                    f"{name}`; nothing was changed")
            return
        try:
            client.networks.create(name, driver="overlay", attachable=True, check_duplicate=True,
                                   labels={f"{LABEL}.app": app})
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # another runner created it a moment ago
                raise
