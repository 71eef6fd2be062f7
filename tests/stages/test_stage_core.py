"""The stage core, over fakes (tests/fakes.py): every transition of a deployment's state machine,
every refusal (exit 4), interrupted switches and rollbacks finished by a re-run, idempotent
re-runs and quarantine. Each stage runs as its own ``Deployment``, as each is its own process in a
pipeline; its health probes and confirmations are real HTTP requests to the fake router.
"""

from __future__ import annotations

from bgci.stages.deploy_green import deploy_green
from bgci.stages.retire import retire
from bgci.stages.rollback import rollback
from bgci.stages.status import status
from bgci.stages.switch import switch
from bgci.stages.verify import verify
from tests.fakes import Pipeline


# -- deploy-green ---------------------------------------------------------------------------
def test_first_deploy_goes_to_blue_and_is_the_candidate(p: Pipeline) -> None:
    result = p.deploy("v1")
    assert (result.colour, result.live_colour) == ("blue", None)
    assert p.world.starts == [("blue", "v1")]
    state = p.state()
    assert state["candidate"] == "blue" and state["colours"]["blue"]["release"]["image"] == "v1"
    assert p.world.live is None, "deploy-green never moves live traffic"


def test_deploy_green_goes_to_the_idle_colour_and_leaves_live_alone(p: Pipeline) -> None:
    p.release("v1")
    result = p.deploy("v2")
    assert (result.colour, result.live_colour) == ("green", "blue")
    assert p.world.live == "blue" and p.world.instances["blue"].release.image == "v1"


def test_an_unhealthy_release_fails_deploy_green_with_exit_1_and_live_untouched(p: Pipeline) -> None:
    p.release("v1")
    code, result = p.run("deploy-green", deploy_green, "broken")
    assert code == 1 and "did not become healthy" in result.message
    assert p.world.live == "blue"


def test_deploy_green_of_what_already_runs_there_only_checks_health(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.deploy("v2")
    assert p.world.starts == [("blue", "v1"), ("green", "v2")], "nothing was started again"


def test_a_quarantined_digest_is_refused_unless_allowed(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    p.ok("rollback", rollback)
    message = p.refused("deploy-green", deploy_green, "v2")
    assert "quarantined" in message
    p.deploy("v2", allow_quarantined=True)
    assert p.world.instances["green"].release.image == "v2"


# -- verify ---------------------------------------------------------------------------------
def test_verify_marks_the_idle_colours_digest_verified(p: Pipeline) -> None:
    p.deploy("v1")
    result = p.verify()
    assert result.colour == "blue"
    assert p.world.images["v1"] in p.state()["verified"]


def test_verify_refuses_when_nothing_runs_on_the_idle_colour(p: Pipeline) -> None:
    p.release("v1")  # blue live, nothing on green
    assert "nothing runs on the idle colour" in p.refused("verify", verify)


def test_a_stage_about_a_deployment_starts_nothing_for_an_app_that_has_none(
        p: Pipeline) -> None:
    p.world.router_running = False
    for name, stage in (("verify", verify), ("switch", switch), ("rollback", rollback),
                        ("retire", retire)):
        assert "nothing is deployed" in p.refused(name, stage)
    assert p.world.router_starts == 0 and not p.world.starts


def test_verify_fails_an_unhealthy_candidate_and_keeps_it_unverified(p: Pipeline) -> None:
    p.world.add_image("flaky")
    p.deploy("flaky")
    p.world.unhealthy.add(p.world.images["flaky"])
    code, _ = p.run("verify", verify)
    assert code == 1
    assert p.world.images["flaky"] not in p.state()["verified"]


# -- switch ---------------------------------------------------------------------------------
def test_switch_sends_live_traffic_to_the_verified_candidate_and_records_previous(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    result = p.switch()
    assert (result.live_colour, result.idle_colour, p.world.live) == ("green", "blue", "green")
    state = p.state()
    assert (state["candidate"], state["previous"]) == (None, "blue")
    assert "blue" in p.world.instances, "the old colour keeps running for an instant rollback"


def test_switch_refuses_an_unverified_candidate_unless_forced(p: Pipeline) -> None:
    p.deploy("v1")
    assert "has not passed `bgci verify`" in p.refused("switch", switch)
    assert p.world.live is None
    p.switch(force=True)
    assert p.world.live == "blue"


def test_switch_refuses_a_candidate_that_is_not_running(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    p.world.instances["green"].running = False
    assert "not running" in p.refused("switch", switch)
    assert p.world.live == "blue"


def test_switch_refuses_an_unhealthy_candidate(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    p.world.unhealthy.add(p.world.images["v2"])
    assert "not healthy" in p.refused("switch", switch)
    assert p.world.live == "blue"


def test_switch_refuses_when_nothing_is_deployed_on_the_idle_colour(p: Pipeline) -> None:
    p.release("v1")
    assert "already live" in p.switch().message  # nothing new to switch to: nothing to do
    del p.world.instances["blue"]  # the live colour is gone, and nothing was deployed since
    p.world.images.pop("v1")
    assert "no deployed colour" in p.refused("switch", switch)


def test_switch_again_is_a_no_op_that_says_so(p: Pipeline) -> None:
    p.release("v1")
    result = p.switch()
    assert "already live" in result.message and p.world.live == "blue"


def test_a_dry_run_switch_changes_nothing(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    result = p.switch(dry_run=True)
    assert "would switch" in result.message and p.world.live == "blue"
    assert p.state()["candidate"] == "green"


def killed_after_intent(p: Pipeline, stage: str, to: str, *, moved: bool) -> None:
    """What a switch or rollback killed after writing its intent leaves: the intent, and the
    router moved (``moved``) or not yet."""
    p.state()["intent"] = {"stage": stage, "to": to, "since": 1.0, "reason": "rolled back"}
    if moved:
        p.world.live = p.world.saved_live = to  # type: ignore[assignment]


def test_a_switch_killed_after_the_router_moved_is_recorded_by_the_next_run(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    killed_after_intent(p, "switch", "green", moved=True)
    result = p.switch()
    state = p.state()
    assert (state["live"], state["previous"], state["candidate"], state["intent"]) == (
        "green", "blue", None, None)
    assert "already live" in result.message and p.world.live == "green"
    assert "recorded interrupted switch" in state["history"][-1]["change"]


def test_a_switch_killed_before_the_router_moved_is_dropped_and_run_again(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    killed_after_intent(p, "switch", "green", moved=False)
    p.switch()
    assert p.world.live == "green" and p.state()["intent"] is None
    assert p.state()["previous"] == "blue"


def test_a_router_that_drifted_is_sent_back_to_the_recorded_live_colour(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.world.live = p.world.saved_live = "green"  # someone moved it by hand; nothing recorded it
    result = p.ok("verify", verify)
    assert p.world.live == "blue" and result.live_colour == "blue"
    assert "back to blue" in p.state()["history"][-2]["change"]


def test_where_clients_may_still_reach_the_old_colour_the_stages_wait_that_out(
        p: Pipeline) -> None:
    p.world.stale = 0.4  # a DNS record's TTL (and a second): resolvers still hold the old answer
    p.release("v1")
    p.deploy("v2")
    p.verify()
    drained = {c.name: c for c in p.switch().checks}["drain blue"]
    assert drained.seconds >= 0.4 and "waited out the TTL" in drained.message
    p.world.live = p.world.saved_live = "blue"  # someone pointed the name back at blue by hand
    result = p.deploy("v3")  # to blue, the idle colour: only once clients have let go of it
    healed = {c.name: c for c in result.checks}["drain blue"]
    assert healed.seconds >= 0.4, "blue was replaced before resolvers let go of its address"
    assert p.world.live == "green" and p.world.starts[-1][0] == "blue"


def test_a_bake_above_max_error_rate_rolls_back(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    p.world.fails_after[p.world.images["v2"]] = 5  # passes the confirmation, then breaks
    code, result = p.run("switch", switch,
                         settings={"switch": {"bake": 0.3, "max_error_rate": 0.1}})
    assert code == 1 and "bake" in result.message, result.message
    assert p.world.live == "blue" and p.world.images["v2"] in p.state()["quarantined"]


def test_a_switch_that_is_not_confirmed_puts_live_traffic_back(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.verify()
    p.world.fails_after[p.world.images["v2"]] = 0  # healthy on the preview, failing once live
    code, result = p.run("switch", switch)
    assert code == 1 and "not confirmed" in result.message
    assert p.world.live == "blue" and p.state()["candidate"] == "green"


# -- rollback -------------------------------------------------------------------------------
def test_rollback_is_instant_while_the_previous_colour_runs_and_quarantines(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    starts = len(p.world.starts)
    result = p.ok("rollback", rollback)
    assert (result.live_colour, p.world.live) == ("blue", "blue")
    assert len(p.world.starts) == starts, "nothing was started: the old colour still ran"
    state = p.state()
    assert p.world.images["v2"] in state["quarantined"] and state["previous"] is None
    assert state["rolled_back_to"] == "blue"


def test_rollback_again_is_a_no_op(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    p.ok("rollback", rollback)
    assert "already rolled back" in p.ok("rollback", rollback).message
    assert p.world.live == "blue"


def test_rollback_refuses_when_there_is_no_previous_version(p: Pipeline) -> None:
    p.release("v1")
    assert "no previous version" in p.refused("rollback", rollback)


def test_rollback_recreates_a_stopped_previous_colour_from_its_digest(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    del p.world.instances["blue"]
    p.ok("rollback", rollback)
    assert p.world.starts[-1] == ("blue", "v1") and p.world.live == "blue"


def test_rollback_refuses_when_the_previous_image_is_gone(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    del p.world.instances["blue"]
    del p.world.images["v1"]
    assert "no longer on the engine" in p.refused("rollback", rollback)
    assert p.world.live == "green"


def test_a_rollback_killed_after_the_router_moved_is_recorded_by_the_next_run(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    killed_after_intent(p, "rollback", "blue", moved=True)
    result = p.ok("rollback", rollback)
    assert "already rolled back" in result.message and p.world.live == "blue"
    state = p.state()
    assert p.world.images["v2"] in state["quarantined"]
    assert (state["live"], state["previous"], state["rolled_back_to"]) == ("blue", None, "blue")


# -- retire ---------------------------------------------------------------------------------
def test_retire_waits_for_retire_after_then_stops_the_idle_colour(p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    kept = p.ok("retire", retire)
    assert "left running" in kept.message and "blue" in p.world.instances
    p.ok("retire", retire, settings={"switch": {"retire_after": 0}})
    assert "blue" not in p.world.instances and p.world.live == "green"


def test_retire_refuses_a_candidate_not_yet_switched_to(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    assert "not yet switched" in p.refused("retire", retire)
    p.ok("retire", retire, force=True)
    assert "green" not in p.world.instances


# -- status ---------------------------------------------------------------------------------
def test_status_reports_each_colour_without_changing_anything(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    before = (dict(p.world.instances), p.world.live, p.state())
    data = p.ok("status", status).extra["status"]
    assert data["live"] == "blue"
    assert data["colours"]["blue"]["healthy"] and data["colours"]["green"]["candidate"]
    assert (dict(p.world.instances), p.world.live, p.state()) == before
