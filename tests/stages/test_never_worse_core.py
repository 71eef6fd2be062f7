"""Never worse than found, over fakes (tests/fakes.py): drift (a router gone or sent elsewhere,
a live colour stopped) is healed from the recorded state before anything else, new settings reach
only the idle colour, `bgci down` makes every stage refuse until `bgci up`, and a stage that leaves
live traffic worse than it found it fails."""

from __future__ import annotations

from typing import Any

from bgci.stages.deploy_green import deploy_green
from bgci.stages.retire import retire
from bgci.stages.rollback import rollback
from bgci.stages.status import status
from bgci.stages.switch import switch
from bgci.stages.verify import verify
from tests.fakes import Pipeline


# -- the router went away between stages ----------------------------------------------------
def test_a_stopped_router_is_started_again_with_the_live_colour_it_had(p: Pipeline) -> None:
    p.release("v1")
    p.world.router_running = False
    p.deploy("v2")
    assert p.world.router_starts == 1 and p.world.live == "blue"


# -- never worse than found: drift healed from the state, changes applied only to idle ----
def test_a_stopped_live_colour_is_restarted_from_its_record_before_anything_else(
        p: Pipeline) -> None:
    p.release("v1")
    p.world.instances["blue"].running = False  # docker kill, a host reboot
    p.deploy("v2")
    assert p.world.starts[-2:] == [("blue", "v1"), ("green", "v2")]
    assert p.world.live == "blue"
    assert p.world.answer("live")[:2] == (200, "blue")


def test_a_missing_router_comes_back_on_the_recorded_live_colour_not_its_files(
        p: Pipeline) -> None:
    p.release("v1")
    p.release("v2")
    p.world.router_running, p.world.saved_live = False, None  # removed, its files with it
    result = p.ok("retire", retire)
    assert p.world.router_starts == 1 and p.world.live == "green"
    assert result.live_colour == "green"


def test_a_router_with_other_settings_is_refused_by_every_stage_until_rebooted(
        p: Pipeline) -> None:
    from bgci.stages.router import reboot

    p.release("v1")
    p.world.router_changes = ["router.image: haproxy:2.8 -> haproxy:2.9"]
    for name, stage, args in (("deploy-green", deploy_green, ("v2",)), ("verify", verify, ()),
                              ("switch", switch, ()), ("rollback", rollback, ()),
                              ("retire", retire, ())):
        assert "haproxy:2.9" in p.refused(name, stage, *args)
    assert p.world.live == "blue" and p.world.router_starts == 0
    result = p.ok("router", reboot)
    assert p.world.router_starts == 1 and p.world.live == "blue"
    assert "router.image" in result.message
    p.deploy("v2")


def test_down_makes_every_stage_refuse_until_up(p: Pipeline) -> None:
    from bgci.stages.down import down, up

    p.release("v1")
    p.deploy("v2")
    p.ok("down", down)
    assert not p.world.instances and not p.world.router_running
    for name, stage, args in (("deploy-green", deploy_green, ("v3",)), ("verify", verify, ()),
                              ("switch", switch, ()), ("rollback", rollback, ()),
                              ("retire", retire, ())):
        assert "`bgci up`" in p.refused(name, stage, *args)
    code, result = p.run("status", status)
    assert code == 1 and "down" in result.message
    result = p.ok("up", up)
    assert p.world.live == "blue" and result.live_colour == "blue"
    assert p.world.answer("live")[:2] == (200, "blue")
    assert p.ok("status", status).live_colour == "blue"


def test_verify_and_switch_act_only_on_their_own_pipelines_release(p: Pipeline) -> None:
    p.release("v1")
    mine = p.deploy("v2").digest
    p.deploy("v3")  # another pipeline deploys in between
    assert "another pipeline" in p.refused("verify", verify, mine)
    assert "another pipeline" in p.refused("switch", switch, digest=mine, force=True)
    assert p.world.live == "blue"


def test_same_release_with_new_settings_is_started_again_on_the_idle_colour(
        p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    p.world.port = 9000  # platform.port changed
    p.deploy("v2")
    assert p.world.starts[-1] == ("green", "v2")
    assert p.world.instances["green"].spec.port == 9000
    assert p.world.instances["blue"].spec.port == 8000, "the live colour keeps its own port"
    assert p.state()["colours"]["green"]["spec"]["port"] == 9000


def test_rollback_recreates_the_previous_colour_with_the_settings_it_ran_with(
        p: Pipeline) -> None:
    p.release("v1")
    p.world.port = 9000
    p.release("v2")
    del p.world.instances["blue"]
    p.ok("rollback", rollback)
    assert p.world.instances["blue"].spec.port == 8000 and p.world.live == "blue"


def test_a_state_of_bgci_0_1_adopts_the_routers_live_colour(p: Pipeline) -> None:
    p.release("v1")
    del p.state()["live"]  # bgci 0.1 kept the live colour in the router only
    result = p.deploy("v2")
    assert p.state()["live"] == "blue" and result.colour == "green"


def test_a_stage_that_leaves_live_traffic_worse_than_it_found_it_fails(p: Pipeline) -> None:
    p.release("v1")
    p.deploy("v2")
    original = p.world.answer

    calls = {"n": 0}

    def breaks_after_the_first_look(role: str, path: str = "/healthz") -> tuple[int, Any, str]:
        calls["n"] += 1
        if role == "live" and calls["n"] > 3:  # the first three: reconcile's look
            return 503, None, "down"
        return original(role, path)

    p.world.answer = breaks_after_the_first_look  # type: ignore[method-assign]
    code, result = p.run("verify", verify)
    assert code == 1 and "is not now" in result.message
    assert result.live_colour is None and result.observed
