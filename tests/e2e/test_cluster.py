"""Past one machine, for real: releases pushed to a registry with a user and password, run by
digest on a 3-node swarm whose nodes never saw the build, switched and rolled back under load
through the live address with no request lost (scripts/test-cluster.sh makes the hosts)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_cluster import NODES, Cluster, cluster_session, script
from e2e_docker import DockerTarget
from e2e_support import (
    RELEASES,
    STAGE_TIMEOUT,
    Project,
    RequestLoop,
    Run,
    Target,
    answer,
    bgci_argv,
    clean_env,
    deploy_live,
    fresh_port,
    make_project,
    unique_app,
)
from e2e_swarm import SwarmTarget
from test_e2e_zero_downtime import AFTER, MIN_EACH_SIDE, assert_clean_cut_over, cut_over_under_load

from bgci.lock import new_lock
from bgci.state.docker import DockerStore
from tests.helpers.images import make_app_copy

# one worker holds the test hosts: their session fixture must not start twice side by side
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.cluster,
              pytest.mark.xdist_group("cluster")]

REPLICAS = 3  # tasks per colour: Swarm spreads them over the three nodes
STOP_AFTER = 1.0  # seconds into the switch when engine 3 is stopped
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """Three engines in a swarm and a registry, for the session (scripts/test-cluster.sh)."""
    with cluster_session() as hosts:
        yield hosts


class RegistryReleases:
    """The example app built on engine 1 by ``bgci build --tag NAME`` with ``build.push = true``:
    pushed to the test registry with the account of the environment, recorded by digest."""

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.app = unique_app("e2e-push")
        self.repo = f"{cluster.registry}/{self.app}"
        self.built: dict[str, tuple[str, str]] = {}  # name -> (repo:tag@sha256:…, image ID)
        self.texts: list[str] = []  # what a person reads: output and reports of the builds

    def build(self, name: str) -> tuple[str, str]:
        if name not in self.built:
            version, unhealthy = RELEASES[name]
            src = make_app_copy(self.workdir / name, version, {
                "app": self.app, "build.image": self.repo, "build.push": True}, unhealthy=unhealthy)
            started = time.monotonic()
            proc = subprocess.run([*bgci_argv(), "build", "--tag", name], cwd=src,
                                  env=clean_env(self.cluster.env(1)), capture_output=True,
                                  text=True, timeout=STAGE_TIMEOUT, check=False)
            run = Run(("build", "--tag", name), proc.returncode, proc.stdout, proc.stderr,
                      time.monotonic() - started)
            assert run.code == 0, f"building and pushing release {name} failed:\n{run}"
            result = json.loads((src / "bgci-reports" / "build.json").read_text(encoding="utf-8"))
            self.texts += [run.text] + [f.read_text(encoding="utf-8", errors="replace")
                                        for f in (src / "bgci-reports").rglob("*") if f.is_file()]
            self.built[name] = (result["image"], result["digest"])
        return self.built[name]

    def cleanup(self) -> None:
        """The releases' images off every engine (the registry goes with the test hosts)."""
        left = []
        for node in range(1, NODES + 1):
            client = self.cluster.client(node)
            for image in client.images.list(filters={"reference": self.repo}):
                # a worker's engine stops the tasks of a removed service in its own time
                for container in client.containers.list(all=True,
                                                        filters={"ancestor": image.id}):
                    container.remove(force=True)
                client.images.remove(image.id, force=True)
            left += [f"engine {node}: {i.id}"
                     for i in client.images.list(filters={"reference": self.repo})]
        assert not left, f"images left behind: {left}"


def registry_digest(cluster: Cluster, repository: str, tag: str,
                    auth: tuple[str, str] | None) -> requests.Response:
    """The registry's answer to a manifest HEAD (V2 API): its Docker-Content-Digest."""
    name = repository.split("/", 1)[1]
    return requests.head(f"http://{cluster.registry}/v2/{name}/manifests/{tag}",
                         headers={"Accept": MANIFEST}, auth=auth, timeout=10)


def project_on(target: Target, root: Path, address: str) -> Project:
    """A project whose router listens on ``address`` (a test host's): the requests go there."""
    listen, preview = f"{address}:{fresh_port()}", f"{address}:{fresh_port()}"
    p = make_project(root, target, {"router.listen": listen, "router.preview": preview})
    p.listen, p.preview = listen, preview
    return p


def switching_is_running(stage: subprocess.Popen[str]) -> bool:
    return stage.poll() is None


def nodes_of_tasks(target: SwarmTarget, app: str, colour: str) -> set[str]:
    [service] = [s for s in target.services(app) if s.name == f"{app}-{colour}"]
    return {t["NodeID"] for t in target.tasks(service)
            if t["DesiredState"] == "running" and t["Status"]["State"] == "running"}


def test_pushed_releases_run_by_digest_on_three_nodes_and_switch_with_no_request_lost(
        cluster: Cluster, tmp_path: Path) -> None:
    releases = RegistryReleases(cluster, tmp_path / "releases")
    target = SwarmTarget(cluster.client(1), releases)  # type: ignore[arg-type]
    target.config_overrides["platform"]["replicas"] = REPLICAS
    target.env = cluster.env(1)
    manager = cluster.address(1)  # the router's node: the live address is there
    try:
        p = project_on(target, tmp_path / "project", manager)
        run_scenario(cluster, target, releases, p)
    finally:
        script("start", "3", timeout=120)  # back as it was (a no-op when it runs)
        try:
            target.cleanup()
        finally:
            releases.cleanup()


def run_scenario(cluster: Cluster, target: SwarmTarget, releases: RegistryReleases,
                 p: Project) -> None:
    # 1. build.push: the release is recorded as repo:tag@<the digest the registry holds>
    v1, v1_id = releases.build("v1")
    match = re.fullmatch(rf"{re.escape(releases.repo)}:v1@(sha256:[0-9a-f]{{64}})", v1)
    assert match, f"build.json records {v1!r}; expected {releases.repo}:v1@sha256:…"
    held = registry_digest(cluster, releases.repo, "v1", cluster.credentials)
    assert held.status_code == 200, held
    assert held.headers["Docker-Content-Digest"] == match.group(1)
    anonymous = registry_digest(cluster, releases.repo, "v1", None)
    assert anonymous.status_code == 401, "the test registry must require the account"

    # 2. the other engines never saw the build; engine 2 alone (platform docker) pulls it by
    # digest with the account and serves it
    for node in (2, 3):
        assert not cluster.client(node).images.list(filters={"reference": f"{releases.repo}"}), (
            f"engine {node} has the image before the deploy: the test would prove nothing")
    alone = DockerTarget(cluster.client(2), releases)  # type: ignore[arg-type]
    alone.env = cluster.env(2)
    try:
        single = project_on(alone, p.root.parent / "alone", cluster.address(2))
        single.run("deploy-green", "--image", v1)
        single.assert_serves("blue", "1.0.0", single.preview_url)
        assert single.result("deploy-green")["image"] == v1
    finally:
        alone.cleanup()

    # 3. deployed by digest, tasks on every node, pulled from the registry there
    deploy_live(p, "v1")
    p.assert_serves("blue", "1.0.0")
    [blue] = [s for s in target.services(p.app) if s.name == f"{p.app}-blue"]
    image = blue.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image == v1, f"the blue service runs {image!r}, not the pushed digest {v1!r}"
    on = nodes_of_tasks(target, p.app, "blue")
    assert len(on) >= 2, f"blue's {REPLICAS} tasks run on {len(on)} node(s): {on}"
    node3 = cluster.client(3).info()["Swarm"]["NodeID"]
    assert node3 in on, f"no blue task on engine 3 (tasks on {on}): Swarm did not spread them"
    pulled = [i.attrs.get("RepoDigests") for i in cluster.client(3).images.list(
        filters={"reference": releases.repo}) if i.id == v1_id]
    assert pulled == [[f"{releases.repo}@{match.group(1)}"]], (
        f"engine 3 (it never saw the build) has {pulled}; expected v1 pulled by its digest")

    # 4. switch to v2 and roll back under a no-retry load through the live address
    v2, _ = releases.build("v2")
    p.run("deploy-green", "--image", v2)
    p.run("verify")
    assert len(nodes_of_tasks(target, p.app, "green")) >= 2
    blue_v1, green_v2 = ("blue", "1.0.0"), ("green", "2.0.0")
    run, records, began, ended = cut_over_under_load(p, "switch")
    assert_clean_cut_over(records, began, ended, old=blue_v1, new=green_v2)
    run, records, began, ended = cut_over_under_load(p, "rollback")
    assert_clean_cut_over(records, began, ended, old=green_v2, new=blue_v1)
    assert p.result("rollback")["live_color"] == "blue", run

    # 5. engine 3 (a worker with tasks of both colours) stops in the middle of a switch to v2
    # again (its quarantine lifted: no third build): live traffic ends on exactly one colour,
    # the one bgci records, and that colour answers
    p.run("quarantine", "clear", releases.build("v2")[1], "--reason", "the test switches again")
    p.run("deploy-green", "--image", v2)
    p.run("verify")
    with RequestLoop(p.live_url, threads=3, hard_cap=120.0) as loop:
        loop.wait_for(5)
        cutting = p.start("switch")
        time.sleep(STOP_AFTER)
        assert switching_is_running(cutting), "the switch ended before engine 3 was stopped"
        script("stop", "3", timeout=60)  # dockerd stops its containers on the way out
        out, err = cutting.communicate(timeout=STAGE_TIMEOUT)
        ended = time.monotonic()
        loop.stop_after(2.0)
    assert cutting.returncode in (0, 1), f"switch exited {cutting.returncode}:\n{out}{err}"
    assert p.result("switch")["live_color"] == ("green" if cutting.returncode == 0 else "blue")
    seen = p.status()
    assert seen["live"] == seen["live_recorded"] in ("blue", "green"), seen
    after = [p.answer() for _ in range(20)]
    assert {(a.status, a.colour) for a in after} == {(200, seen["live"])}, after
    sent = [r for thread in loop.records for r in thread]
    late = {(r.status, r.colour) for r in sent if r.started > ended}
    assert late == {(200, seen["live"])}, (
        f"keep-alive clients after the switch got {late}; "
        f"{sum(1 for r in sent if r.error)} of {len(sent)} requests failed in all")

    # 6. the registry password appears nowhere a person reads
    _, password = cluster.credentials
    seen = [*releases.texts, *(r.text for r in p.runs)]
    seen += [f.read_text(encoding="utf-8", errors="replace")
             for f in p.reports.rglob("*") if f.is_file()]
    leaked = [text[:200] for text in seen if password in text]
    assert not leaked, f"the registry password is in the output or reports: {leaked}"


# -- a fleet: two Docker hosts over SSH, each a whole deployment, switched all or nothing -------
FLEET = (1, 2)  # engines of the test hosts in the fleet
BAKE = 8.0  # seconds the last switch watches live traffic: host 2's green fails inside them


def test_a_two_host_fleet_switches_and_rolls_back_all_or_nothing(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    releases = RegistryReleases(cluster, tmp_path / "releases")
    one, two = (DockerTarget(cluster.client(n), releases) for n in FLEET)  # type: ignore[arg-type]
    # the runner reaches each host as ssh://bgci-deploy@… with the test hosts' key in its HOME
    one.env = {**cluster.env(1), "HOME": cluster.facts["BGCI_CLUSTER_HOME"]}
    live, preview = fresh_port(), fresh_port()
    try:
        p = make_project(tmp_path / "project", one, {
            "platform.fleet": [cluster.facts[f"BGCI_CLUSTER_HOST{n}"] for n in FLEET],
            "router.listen": f"0.0.0.0:{live}", "router.preview": f"0.0.0.0:{preview}",
            "build.push": True, "build.image": releases.repo})
        two.adopt(p.app)
        fleet_scenario(cluster, releases, p, {n: f"http://{cluster.address(n)}:{live}"
                                              for n in FLEET})
    finally:
        script("start", "2", "sshd", timeout=60)  # back as it was (a no-op when it runs)
        try:
            one.cleanup()
            two.cleanup()
        finally:
            releases.cleanup()


def served_by(url: str, count: int = 10) -> set[tuple[int, str | None, str | None]]:
    """(status, colour, version) of ``count`` new connections to ``url``'s /version."""
    return {(got.status, got.colour, got.version) for got in (answer(url) for _ in range(count))}


def fleet_cut_over(p: Project, urls: dict[int, str], *args: str) -> tuple[
        Run, dict[int, RequestLoop], float, float]:
    """``bgci ARGS`` on the fleet while two no-retry keep-alive clients load each host."""
    loops = {n: RequestLoop(url, threads=2, hard_cap=180.0) for n, url in urls.items()}
    for loop in loops.values():
        loop.__enter__()
    try:
        for loop in loops.values():
            loop.wait_for(MIN_EACH_SIDE)
        began = time.monotonic()
        run = p.run(*args)
        ended = time.monotonic()
        time.sleep(AFTER)
    finally:
        for loop in loops.values():
            loop.stop_after(0)
            loop.__exit__(None, None, None)
    return run, loops, began, ended


def fleet_scenario(cluster: Cluster, releases: RegistryReleases, p: Project,
                   urls: dict[int, str]) -> None:
    v1, v2, v3 = (releases.build(name)[0] for name in ("v1", "v2", "v3"))

    # 1. v1 live on both hosts, each with its own router, state and reports
    run = p.run("deploy-green", "--image", v1)
    assert "deploy-green on 2 hosts in parallel" in run.err, run
    p.run("verify")
    run = p.run("switch")
    result = p.result("switch")
    assert result["live_color"] == "blue", result
    assert sorted(result["extra"]["hosts"]) == [cluster.address(n) for n in FLEET]
    assert [c["name"] for c in result["checks"]] == [f"{cluster.address(n)}: switch"
                                                     for n in FLEET]
    for n in FLEET:
        assert served_by(urls[n]) == {(200, "blue", "1.0.0")}, f"host {n}"
        assert (p.reports / "hosts" / cluster.address(n) / "switch.xml").is_file()

    # 2. v2 switched and rolled back under load on both hosts: no request lost on either
    p.run("deploy-green", "--image", v2)
    p.run("verify")
    for stage, old, new in (("switch", ("blue", "1.0.0"), ("green", "2.0.0")),
                            ("rollback", ("green", "2.0.0"), ("blue", "1.0.0"))):
        run, loops, began, ended = fleet_cut_over(p, urls, stage)
        for n, loop in loops.items():
            try:
                assert_clean_cut_over(loop.records, began, ended, old=old, new=new)
            except AssertionError as exc:
                raise AssertionError(f"host {n}, {stage}: {exc}\n{run}") from None
        assert p.result(stage)["live_color"] == new[0]

    # 3. host 2 unreachable (its sshd stopped) before a switch: exit 3, no host switched
    p.run("deploy-green", "--image", v3)
    p.run("verify")
    script("stop", "2", "sshd", timeout=60)
    try:
        run = p.run("switch", expect=3)
    finally:
        script("start", "2", "sshd", timeout=60)
    assert f"{cluster.address(2)}: " in run.err and "nothing was changed on any host" in run.err
    for n in FLEET:
        assert served_by(urls[n]) == {(200, "blue", "1.0.0")}, f"host {n} after exit 3"

    # 4. host 2's new colour fails while the switch bakes: both hosts end on the old colour
    cutting = p.start("--set", f"switch.bake={BAKE}", "switch")
    deadline = time.monotonic() + 120
    while (200, "green", "3.0.0") not in served_by(urls[2], 1):
        assert cutting.poll() is None, f"the switch ended early: {cutting.communicate()}"
        assert time.monotonic() < deadline, "host 2 never served green"
        time.sleep(0.1)
    made = cluster.client(2).containers.get(f"{p.app}-green").exec_run(
        ["touch", "/app/UNHEALTHY"], user="0")
    assert made.exit_code == 0, made.output
    out, err = cutting.communicate(timeout=STAGE_TIMEOUT)
    assert cutting.returncode == 1, f"switch exited {cutting.returncode}:\n{out}{err}"
    assert "every host serves what it served before" in err, err
    result = p.result("switch")
    assert result["extra"]["put_back"] == {cluster.address(1): True}, result
    for n in FLEET:
        assert served_by(urls[n]) == {(200, "blue", "1.0.0")}, f"host {n} after the put-back"
    status = p.run("status", "--json")
    hosts = json.loads(status.out)["extra"]["hosts"]
    assert {h["live_color"] for h in hosts.values()} == {"blue"}, hosts

    # 5. a runner that died holding the fleet lock: `bgci lock status` names it, `lock release`
    # frees it
    fleet_store = DockerStore(cluster.client(1), f"{p.app}-fleet")
    assert fleet_store.try_lock(new_lock("a runner that died", "")) is None
    run = p.run("lock", "status")
    assert f"the fleet lock (on {cluster.address(1)}): held by a runner that died" in run.err, run
    run = p.run("lock", "release")
    assert f"the fleet lock (on {cluster.address(1)}): released (held by a runner that died" \
        in run.err, run
    assert fleet_store.current_lock() is None
