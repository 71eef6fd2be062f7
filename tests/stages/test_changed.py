"""``changed`` in every stage result: true exactly when the stage changed the deployment (with
``--dry-run``: when it would have), so that a re-run of a pipeline that reached its goal reports
nothing changed (the Ansible module's ``changed``, a CI's "nothing to do"). And a pipeline re-run
for the release that already serves live traffic leaves the rollback target alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.model import StageResult
from bgci.stages.build import build
from bgci.stages.deploy_green import deploy_green
from bgci.stages.down import down, up
from bgci.stages.lock import lock_release
from bgci.stages.retire import retire
from bgci.stages.rollback import rollback
from bgci.stages.status import status
from bgci.stages.verify import verify
from tests.fakes import World
from tests.stages.test_stage_core import Pipeline


@pytest.fixture
def p(tmp_path: Path) -> Pipeline:
    world = World()
    for image in ("v1", "v2"):
        world.add_image(image)
    world.add_image("broken", healthy=False)
    return Pipeline(tmp_path, world)


def pipeline(p: Pipeline, image: str) -> list[StageResult]:
    """deploy-green, verify and switch of ``image``, each told the digest deploy-green reported
    (as bgci.env or the Ansible role pass it on)."""
    green = p.deploy(image)
    return [green, p.ok("verify", verify, green.digest), p.switch(digest=green.digest)]


def test_a_pipeline_changes_the_deployment_and_its_re_run_changes_nothing(p: Pipeline) -> None:
    first = pipeline(p, "v1")
    assert [r.changed for r in first] == [True, True, True]
    starts = list(p.world.starts)

    again = pipeline(p, "v1")

    assert [r.changed for r in again] == [False, False, False], [r.message for r in again]
    assert "already serves live traffic on blue" in again[0].message
    assert "nothing to verify" in again[1].message and "already live" in again[2].message
    assert p.world.starts == starts and p.world.live == "blue"
    assert [r.colour for r in again] == ["blue", "blue", "blue"]


def test_re_running_the_live_releases_pipeline_keeps_the_rollback_target(p: Pipeline) -> None:
    pipeline(p, "v1")
    pipeline(p, "v2")

    again = pipeline(p, "v2")

    assert not any(r.changed for r in again)
    assert p.world.instances["blue"].release.image == "v1", "the rollback target is still v1"
    back = p.ok("rollback", rollback)
    assert back.changed and p.world.live == "blue"
    assert not p.ok("rollback", rollback).changed


def test_the_live_release_with_new_settings_goes_to_the_idle_colour(p: Pipeline) -> None:
    pipeline(p, "v1")
    p.world.port = 9000  # platform.port changed: only a new colour may get it
    result = p.deploy("v1")
    assert result.changed and result.colour == "green"
    assert p.world.starts[-1] == ("green", "v1")


def test_deploy_green_of_what_the_idle_colour_runs_changes_nothing(p: Pipeline) -> None:
    pipeline(p, "v1")
    assert p.deploy("v2").changed
    again = p.deploy("v2")
    assert not again.changed and again.colour == "green"


def test_a_verify_that_fails_changes_only_a_verification_it_revokes(p: Pipeline) -> None:
    pipeline(p, "v1")
    code, failed = p.run("deploy-green", deploy_green, "broken")
    assert code == 1 and failed.changed, "a colour was started, even if it never got healthy"
    p.deploy("v2")
    assert p.ok("verify", verify).changed
    assert not p.ok("verify", verify).changed, "verified already"
    p.world.unhealthy.add(p.world.images["v2"])
    code, result = p.run("verify", verify)
    assert code == 1 and result.changed, "the earlier verification was revoked"
    code, result = p.run("verify", verify)
    assert code == 1 and not result.changed


def test_dry_runs_say_what_would_change(p: Pipeline) -> None:
    pipeline(p, "v1")
    p.deploy("v2")
    p.verify()
    plan = p.switch(dry_run=True)
    assert (plan.dry_run, plan.changed, p.world.live) == (True, True, "blue")
    p.switch()
    assert p.switch(dry_run=True).changed is False, "already live: nothing would change"
    plan = p.ok("rollback", rollback, dry_run=True)
    assert (plan.dry_run, plan.changed, p.world.live) == (True, True, "green")
    p.ok("rollback", rollback)
    plan = p.ok("rollback", rollback, dry_run=True)
    assert (plan.dry_run, plan.changed) == (True, False)


def test_healing_drift_is_a_change(p: Pipeline) -> None:
    pipeline(p, "v1")
    p.deploy("v2")
    p.world.live = p.world.saved_live = "green"  # moved by hand
    assert p.ok("verify", verify).changed
    p.world.router_running = False  # stopped by an operator
    assert p.switch(dry_run=True).changed and p.world.router_running


def test_build_of_a_tag_already_built_from_the_same_sources_changes_nothing(p: Pipeline) -> None:
    assert p.ok("build", build, "t1").changed
    again = p.ok("build", build, "t1")
    assert not again.changed and "unchanged" in again.checks[-1].message


def test_operator_stages(p: Pipeline) -> None:
    pipeline(p, "v1")
    pipeline(p, "v2")
    assert not p.ok("status", status).changed
    assert not p.ok("retire", retire).changed, "idle for less than retire_after"
    assert p.ok("retire", retire, force=True).changed
    assert p.ok("down", down).changed
    assert not p.ok("down", down).changed
    assert p.ok("up", up).changed
    assert not p.ok("up", up).changed
    assert not p.ok("lock", lock_release).changed, "the lock was free"
