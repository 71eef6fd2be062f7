"""Never worse than found: the everyday changes a team makes, and ordinary drift, under a live
request loop (keep-alive clients that never retry). Each stage either does its work losing no
request, or refuses (exit 4) naming the command that applies the change, losing none either; and
afterwards live traffic is served by the last live release.

Drift that already cut live traffic (a router removed or killed, both colours stopped, `bgci down`)
cannot lose "no request" before bgci runs: there the tests check that the next stage heals live
traffic from the recorded state before it touches anything else, and that `bgci status` alerts
(exit 1) meanwhile.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Project, RequestLoop, Run
from faults_support import (
    TRACEBACK,
    SharedApp,
    burst,
    crash_colour,
    grouped,
    router_name,
    shared_app,
    stop_router,
    wait_live,
)

from tests.helpers.images import apply_overrides, test_env, to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.e2e

NO_SMOKE = {"verify.smoke": ""}


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


@pytest.fixture(scope="module", params=grouped("never-worse", ("docker", "process", "swarm")))
def app(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    with shared_app(request, tmp_path_factory, NO_SMOKE) as shared:
        yield shared


# -- helpers ------------------------------------------------------------------------------
@contextlib.contextmanager
def config_changed(p: Project, overrides: dict[str, Any]) -> Iterator[None]:
    """bgci.toml with ``overrides`` for the block (as a team's commit would change it)."""
    path = p.root / "bgci.toml"
    before = path.read_text(encoding="utf-8")
    config = tomllib.loads(before)
    apply_overrides(config, overrides)
    path.write_text(to_toml(config), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(before, encoding="utf-8")


@contextlib.contextmanager
def no_retry_load(p: Project) -> Iterator[RequestLoop]:
    """Four keep-alive clients through the live address that never retry, for the block."""
    with RequestLoop(p.live_url, threads=4, hard_cap=300.0) as loop:
        loop.wait_for(3)
        yield loop


def lost(loop: RequestLoop, p: Project | None = None) -> list[str]:
    """Each failed request: what it was, what came back, and the bgci command that ran when it was
    sent (with the seconds since that command started)."""
    found = []
    for r in (r for sent in loop.records for r in sent
              if r.error or r.status is None or not 200 <= r.status < 300):
        during = [run for run in (p.runs if p else []) if run.started <= r.started]
        where = (f" during `bgci {' '.join(during[-1].args)}` +{r.started - during[-1].started:.2f}s"
                 if during else "")
        found.append(f"{r.kind}{where}: {r.status} {r.error or ''}".strip())
    return found


def served(loop: RequestLoop) -> int:
    return sum(len(sent) for sent in loop.records)


def live_release(app: SharedApp) -> tuple[str, str]:
    """Something live and healthy, deployed by this module: (live colour, its version)."""
    p = app.p
    status = app.status if app.status is not None else p.status(expect=None)
    app.status = None
    live = status.get("live")
    if live is None or status.get("down") or not status["colours"][live]["healthy"]:
        if status.get("down"):
            p.run("up", expect=None)
        p.run("deploy-green", "--image", app.fresh("v1"))
        p.run("verify")
        p.run("switch")
        live = p.status()["live"]
    return live, p.answer().version or ""


def assert_served_by(p: Project, colour: str, version: str) -> None:
    got = burst(p.live_url)
    assert got.one_colour() == colour and set(got.versions) == {version}, (
        f"live traffic should be served by {colour} at {version}: {got}")


def refused_with(run: Run, *words: str) -> None:
    assert run.code == 4, run
    assert TRACEBACK not in run.text
    for word in words:
        assert word in run.err, f"{word!r} not in the refusal:\n{run}"


# -- the app's own settings reach only the colour the new release goes to ------------------
@pytest.mark.e2e
@pytest.mark.platforms("docker", "swarm")  # the process platform picks a free port per colour
def test_a_new_port_reaches_only_the_new_release_and_rollback_keeps_the_old(
        app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    idle = other(live)
    with config_changed(p, {"platform.port": 9000}), no_retry_load(p) as loop:
        p.run("deploy-green", "--image", app.fresh("v2"))
        p.run("verify")
        p.run("switch")
        assert p.status()["colours"][idle]["port"] == 9000
        assert p.status()["colours"][live]["port"] == 8000, "the old colour keeps its own port"
        p.run("rollback")  # back to the old colour, on the port it was started with
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} requests lost: {lost(loop, p)[:5]}"
    assert_served_by(p, live, version)


@pytest.mark.e2e
def test_new_environment_reaches_only_the_idle_colour_and_a_changed_spec_restarts_it(
        app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    idle = other(live)
    release = app.fresh("v2")
    with no_retry_load(p) as loop:
        # FAIL_HEALTH=1 makes the example app unhealthy: had it reached the live colour, live
        # traffic would fail now
        with config_changed(p, {"platform.env": {"FAIL_HEALTH": "1"}}):
            failed = p.run("--set", "health.deadline=10", "deploy-green", "--image", release,
                           expect=1)
            assert "did not become healthy" in failed.err
        again = p.run("deploy-green", "--image", release)  # same digest, settings changed back
        assert "other settings" in again.err, again
        p.run("verify")
        p.run("switch")
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} requests lost: {lost(loop, p)[:5]}"
    assert_served_by(p, idle, p.target.version("v2"))
    app.status = p.status()
    assert app.status["live"] == idle and version


@pytest.mark.e2e
@pytest.mark.platforms("process")  # platform.command is the process platform's
def test_a_new_command_reaches_only_the_idle_colour(app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    command = tomllib.loads((p.root / "bgci.toml").read_text())["platform"]["command"]
    with config_changed(p, {"platform.command": "exit 3 # " + command}), no_retry_load(p) as loop:
        p.run("deploy-green", "--image", app.fresh("v2"), expect=1)  # the new command fails
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} requests lost: {lost(loop, p)[:5]}"
    assert_served_by(p, live, version)


# -- router changes are never implicit ------------------------------------------------------
@contextlib.contextmanager
def _router_change(p: Project) -> Iterator[dict[str, Any]]:
    """A change of the router that needs a new router: its image (another tag of the same
    image) on docker and swarm, its kind on the process platform."""
    if p.target.kind == "process":
        yield {"router.kind": "haproxy"}
        return
    client: Any = p.target.client  # type: ignore[attr-defined]
    image = client.images.get(test_env()["BGCI_TEST_HAPROXY_IMAGE"])
    image.tag("bgci-test/haproxy", "other")
    try:
        yield {"router.image": "bgci-test/haproxy:other"}
    finally:
        client.images.remove("bgci-test/haproxy:other")  # the tag only: the image stays


@pytest.mark.e2e
def test_a_router_change_is_refused_by_every_stage_until_router_reboot(app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    with _router_change(p) as change, config_changed(p, change):
        with no_retry_load(p) as loop:
            for args in (("deploy-green", "--image", app.fresh("v2")), ("verify",), ("switch",),
                         ("rollback",), ("retire",)):
                refused_with(p.run(*args, expect=None), "bgci router reboot")
            time.sleep(0.5)
        assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} lost: {lost(loop, p)[:5]}"
        status = p.status()
        assert status["router_changes"], status
        reboot = p.run("router", "reboot")
        assert "live traffic was cut for" in reboot.out, reboot
        result = p.result("router")
        assert result["live_color"] == live and result["extra"]["reboot"]["changes"]
        assert_served_by(p, live, version)
        with no_retry_load(p) as loop:
            p.run("deploy-green", "--image", app.fresh("v2"))  # the new router takes stages again
            time.sleep(0.5)
        assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} lost: {lost(loop, p)[:5]}"
    p.run("router", "reboot")  # back to the module's router
    assert_served_by(p, live, version)


@pytest.mark.e2e
def test_a_router_started_by_another_bgci_version_is_refused_until_router_reboot(
        app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    p.run("router", "reboot", env={"BGCI_TEST_ROUTER_TEMPLATE": "-older"})
    with no_retry_load(p) as loop:
        refused_with(p.run("deploy-green", "--image", app.fresh("v2"), expect=None),
                     "template", "bgci router reboot")
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} lost: {lost(loop, p)[:5]}"
    p.run("router", "reboot")
    assert_served_by(p, live, version)


# -- drift is healed from the state --------------------------------------------------------
def _remove_router(p: Project) -> None:
    if p.target.kind == "docker":
        client: Any = p.target.client  # type: ignore[attr-defined]
        client.containers.get(router_name(p)).remove(force=True)
    elif p.target.kind == "process":
        stop_router(p)
        import shutil

        shutil.rmtree(p.target.state_dir / p.app / "router")  # type: ignore[attr-defined]
    else:
        client = p.target.client  # type: ignore[attr-defined]
        client.services.get(router_name(p)).remove()
        deadline = time.monotonic() + 60
        # the service goes first; its task stops a moment later, and with it the live address
        while client.services.list(filters={"name": router_name(p)}) or any(
                burst(p.live_url, 1).statuses):
            assert time.monotonic() < deadline, "the router service was not removed"
            time.sleep(0.5)


@pytest.mark.e2e
@pytest.mark.parametrize("drift", [
    "router removed",
    # on swarm, Swarm itself restarts killed tasks
    pytest.param("router killed", marks=pytest.mark.platforms("docker", "process")),
    pytest.param("colours stopped", marks=pytest.mark.platforms("docker", "process")),
])
def test_drift_is_healed_from_the_state_before_the_idle_colour_is_touched(
        app: SharedApp, drift: str) -> None:
    p = app.p
    live, version = live_release(app)
    if drift == "router removed":
        _remove_router(p)
    elif drift == "router killed":
        if p.target.kind == "docker":
            p.target.client.containers.get(router_name(p)).kill()  # type: ignore[attr-defined]
        else:
            stop_router(p)
    else:
        crash_colour(p, live)
        crash_colour(p, other(live), if_running=True)  # an earlier case may have removed it
    time.sleep(1)
    alert = p.run("status", expect=1)  # a cron job on `bgci status` sees the outage
    assert "not served" in alert.err, alert
    release = app.fresh("v2")
    run = p.run("deploy-green", "--image", release)
    assert f"live: {live}" in run.err, run
    assert p.result("deploy-green")["live_color"] == live
    assert p.dotenv()["BGCI_LIVE_COLOR"] == live
    assert_served_by(p, live, version)
    log = run.err
    healed = log.find("starting router" if "router" in drift else f"{live} serves live traffic")
    started = log.find(f"start {release}")
    assert healed != -1 and (started == -1 or healed < started), (
        f"live traffic must be healed before the idle colour is touched:\n{log}")
    with no_retry_load(p) as loop:
        p.run("verify")
        p.run("switch")
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} lost: {lost(loop, p)[:5]}"
    app.status = p.status()


@pytest.mark.e2e
@pytest.mark.platforms("docker", "process")  # the same on every platform: these prove it
def test_a_router_that_drifted_from_the_state_is_sent_back(app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    p.run("deploy-green", "--image", app.fresh("v2"))
    # the router is moved to the idle colour by hand, behind bgci's back
    moved = subprocess.run([sys.executable, "-c", MOVE_ROUTER, str(p.root / "bgci.toml"),
                            other(live)], cwd=p.root, env=p.env(), capture_output=True,
                           text=True, timeout=120, check=False)
    assert moved.returncode == 0, moved.stderr
    wait_live(p, other(live))
    run = p.run("verify")
    assert "drift" in run.err and p.result("verify")["live_color"] == live, run
    assert_served_by(p, live, version)


MOVE_ROUTER = """
import sys
from bgci.config import load_config
from bgci.log import StderrLog
from bgci.registry import make_router, open_site
config = load_config(sys.argv[1])
site = open_site(config)
router = make_router(config, site)
running = {c: i.address for c, i in site.platform.instances().items() if i.running}
router.ensure(running, None, StderrLog())
router.switch(sys.argv[2])
site.close()
"""


# -- down and up ------------------------------------------------------------------------------
@pytest.mark.e2e
def test_after_down_every_stage_refuses_until_up_brings_back_the_live_release(
        app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    p.run("down")
    for args in (("deploy-green", "--image", app.fresh("v2")), ("verify",), ("switch",),
                 ("rollback",), ("retire",)):
        refused_with(p.run(*args, expect=None), "bgci up")
    alert = p.run("status", expect=1)
    assert "down" in alert.err
    up = p.run("up")
    assert f"live: {live}" in up.out, up
    assert_served_by(p, live, version)
    with no_retry_load(p) as loop:
        p.run("deploy-green", "--image", app.fresh("v2"))
        p.run("verify")
        p.run("switch")
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} lost: {lost(loop, p)[:5]}"
    app.status = p.status()


# -- a pipeline acts only on its own release -------------------------------------------------
@pytest.mark.e2e
@pytest.mark.platforms("docker", "process")  # the same on every platform: these prove it
def test_two_interleaved_pipelines_never_verify_or_switch_each_others_release(
        app: SharedApp) -> None:
    p = app.p
    live, version = live_release(app)
    first, second = app.fresh("v2"), app.fresh("v2")
    with no_retry_load(p) as loop:
        p.run("deploy-green", "--image", first)
        mine = p.result("deploy-green")["digest"]
        p.run("deploy-green", "--image", second)  # the other pipeline, in between
        theirs = p.result("deploy-green")["digest"]
        refused_with(p.run("verify", env={"BGCI_DIGEST": mine}, expect=None), "another pipeline")
        refused_with(p.run("switch", "--force", env={"BGCI_DIGEST": mine}, expect=None),
                     "another pipeline")
        p.run("verify", env={"BGCI_DIGEST": theirs})
        p.run("switch", env={"BGCI_DIGEST": theirs})
        time.sleep(0.5)
    assert not lost(loop, p), f"{len(lost(loop, p))} of {served(loop)} lost: {lost(loop, p)[:5]}"
    assert p.result("switch")["digest"] == theirs
    app.status = p.status()
    assert app.status["live"] == other(live) and version


@pytest.mark.e2e
@pytest.mark.platforms("docker", "process")  # the same on every platform: these prove it
def test_an_empty_image_and_a_build_of_another_app_are_usage_errors(app: SharedApp) -> None:
    p = app.p
    empty = p.run("deploy-green", "--image", "", expect=2)
    assert "--image is empty" in empty.err
    (p.reports / "build.json").write_text('{"app": "someone-else", "exit_code": 0, '
                                          '"image": "someone-else:1"}', encoding="utf-8")
    other_app = p.run("deploy-green", expect=2)
    assert "someone-else" in other_app.err
