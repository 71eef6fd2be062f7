"""The swarm platform of the end-to-end suite: a single-node swarm made for the session (and left
as the engine was found), and the ``Target`` that deploys the docker suite's images to it with
two replicas per colour, then removes every service, network, volume, config and container."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
from e2e_docker import DockerReleases
from e2e_support import COLOURS, RELEASES

from bgci.swarm_engine import REAP_WAIT, wait_reaped
from tests.helpers.images import test_env

REPLICAS = 2
GONE_TIMEOUT = 60.0  # seconds for Swarm to remove what a test made

# The platform-neutral tests that run on swarm by default: those that go through what the swarm
# platform does its own way (services replaced, drained and scaled to zero, re-created on
# rollback; the lock as a Swarm config; a switch under load with two tasks per colour; a kill -9
# while a service is half made). The rest prove stage logic that is the same on every platform:
# they run on swarm too with BGCI_E2E_SWARM=all (about 4 more minutes on 2 cores).
SWARM_SUBSET = frozenset({
    "test_full_cycle_v1_v2_rollback_v3",
    "test_switch_and_rollback_lose_no_request",
    "test_retire_waits_for_retire_after_then_stops_the_idle_colour",
    "test_concurrent_deploys_one_wins_the_other_names_the_holder",
    "test_kill_9_at_checkpoint_then_rerun_completes[swarm-deploy-green:started]",
    "test_kill_9_at_checkpoint_then_rerun_completes[swarm-rollback:recreated]",
    # a colour's new port: HAProxy's server templates change by a seamless reload; the router
    # service removed: healed from the state (tests/e2e/test_never_worse.py)
    "test_a_new_port_reaches_only_the_new_release_and_rollback_keeps_the_old[swarm]",
    "test_drift_is_healed_from_the_state_before_the_idle_colour_is_touched[swarm-router removed]",
    # the operator's commands: service logs followed, a one-off on the overlay, rollback --to
    # re-creating a service, destroy removing services, configs, volume and network
    "test_the_operators_commands[swarm]",
})
ALL_ENV = "BGCI_E2E_SWARM"


def beyond_subset(item: Any) -> bool:
    """Whether ``item`` is a platform-neutral test's swarm run outside SWARM_SUBSET (none is with
    ``BGCI_E2E_SWARM=all``). Swarm-only tests are not platform-parametrised and always run."""
    if os.environ.get(ALL_ENV) == "all":
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    return ("swarm" in params.values() and item.name not in SWARM_SUBSET
            and item.originalname not in SWARM_SUBSET)


@contextlib.contextmanager
def single_node_swarm(client: Any) -> Iterator[None]:
    """The engine as a swarm manager for the block: ``docker swarm init`` on 127.0.0.1 when it is
    in no swarm, ``docker swarm leave --force`` afterwards; a manager already is left alone."""
    swarm = client.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState")
    if state == "active":
        if not swarm.get("ControlAvailable"):
            raise RuntimeError("the engine is a swarm worker: the swarm tests need a manager")
        yield
        return
    if state != "inactive":
        raise RuntimeError(f"the engine's swarm state is {state!r}: expected active or inactive")
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield
    finally:
        client.swarm.leave(force=True)


def _wait(done: Callable[[], bool]) -> None:
    """Until ``done()``, at most GONE_TIMEOUT s (the caller's final check reports what is left)."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while not done() and time.monotonic() < deadline:
        time.sleep(0.25)


class SwarmTarget:
    """Colours as Swarm services with two tasks each; router, state and lock on the swarm too."""

    kind = "swarm"

    def __init__(self, client: Any, releases: DockerReleases) -> None:
        self.client = client
        self.releases = releases
        self.config_overrides: dict[str, Any] = {
            "platform": {"kind": "swarm", "port": 8000, "replicas": REPLICAS},
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

    # -- what exists ------------------------------------------------------------------------
    def services(self, app: str) -> list[Any]:
        return list(self.client.services.list(filters={"label": f"org.bgci.app={app}"}))

    def tasks(self, service: Any) -> list[dict[str, Any]]:
        return [t for t in self.client.api.tasks(filters={"service": service.id})
                if t.get("ServiceID") == service.id]

    def running(self, app: str) -> dict[str, str]:
        """colour -> service ID and its running task IDs (a restarted task changes it)."""
        found = {}
        for service in self.services(app):
            colour = (service.attrs["Spec"].get("Labels") or {}).get("org.bgci.colour")
            tasks = sorted(t["ID"] for t in self.tasks(service)
                           if t["DesiredState"] == "running" and t["Status"]["State"] == "running")
            if colour in COLOURS and tasks:
                found[colour] = f"{service.id}:{','.join(tasks)}"
        return found

    def replicas(self, app: str, colour: str) -> int:
        """Running tasks of the colour's service (0 when there is no service)."""
        for service in self.services(app):
            if service.name == f"{app}-{colour}":
                return sum(1 for t in self.tasks(service) if t["DesiredState"] == "running"
                           and t["Status"]["State"] == "running")
        return 0

    def _containers(self, app: str) -> list[dict[str, Any]]:
        """Raw listings (one call: Swarm removes task containers while the test looks)."""
        return list(self.client.api.containers(all=True, filters={"label": f"org.bgci.app={app}"}))

    def _networks(self, app: str) -> list[Any]:
        return [n for n in self.client.networks.list(names=[f"bgci-{app}"])
                if n.name == f"bgci-{app}"]

    def _volumes(self, app: str) -> list[Any]:
        return [v for v in self.client.volumes.list(filters={"name": f"bgci-{app}-"})
                if v.name.startswith(f"bgci-{app}-")]

    def _configs(self, app: str) -> list[Any]:
        return list(self.client.configs.list(filters={"label": f"org.bgci.app={app}"}))

    def snapshot(self, app: str) -> list[tuple[str, ...]]:
        items: list[tuple[str, ...]] = []
        for service in self.services(app):
            replicas = (service.attrs["Spec"].get("Mode") or {}).get("Replicated", {})
            items.append(("service", service.name, service.id, str(service.version),
                          str(replicas.get("Replicas"))))
            items += [("task", t["ID"], t["Status"]["State"]) for t in self.tasks(service)]
        items += [("network", n.name, n.id) for n in self._networks(app)]
        items += [("volume", v.name) for v in self._volumes(app)]
        items += [("config", c.name, c.id) for c in self._configs(app)]
        return sorted(items)

    # -- cleanup ----------------------------------------------------------------------------
    def cleanup(self) -> None:
        left: list[str] = []
        for app in self.apps:
            for service in self.services(app):
                # not while Swarm deletes the tasks of a scale-down (a killed bgci's): that
                # panics Docker 20.10's swarm manager (bgci/swarm_engine.py)
                wait_reaped(self.client, service, time.monotonic() + REAP_WAIT)
                with contextlib.suppress(docker.errors.NotFound):
                    service.remove()
            # Swarm's agent takes seconds to stop the tasks of a removed service: the test
            # removes its own task containers at once (the agent then finds them gone)
            for container in self._containers(app):
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_container(container["Id"], force=True, v=True)
            for config in self._configs(app):
                with contextlib.suppress(docker.errors.NotFound):
                    config.remove()
            for volume in self._volumes(app):
                with contextlib.suppress(docker.errors.NotFound):
                    volume.remove(force=True)

            def networks_gone(app: str = app) -> bool:
                for network in self._networks(app):
                    with contextlib.suppress(docker.errors.APIError):
                        network.remove()  # refused while task endpoints are still attached
                return not self._networks(app)

            _wait(networks_gone)
            left += [f"service {s.name}" for s in self.services(app)]
            left += [f"container {c['Names']}" for c in self._containers(app)]
            left += [f"network {n.name}" for n in self._networks(app)]
            left += [f"volume {v.name}" for v in self._volumes(app)]
            left += [f"config {c.name}" for c in self._configs(app)]
        self.apps.clear()
        assert not left, f"left behind on the swarm: {left}"
