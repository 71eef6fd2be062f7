"""The operator's commands over fakes (tests/fakes.py): the releases a deployment records, rollback
to any of them, quarantine list and clear, destroy, retire --prune, and the colour a tool picks.
End to end, on the real platforms: tests/e2e/test_toolbox.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.errors import ConfigError
from bgci.model import Release
from bgci.record import ReleaseRecord, State
from bgci.stages.deploy_green import deploy_green
from bgci.stages.destroy import destroy
from bgci.stages.quarantine import quarantine_clear, quarantine_list
from bgci.stages.releases import find_release, releases, render
from bgci.stages.retire import retire
from bgci.stages.rollback import rollback, rollback_to
from bgci.stages.switch import switch
from bgci.stages.toolbox import exec_one_off, pick_colour
from bgci.stages.verify import verify
from tests.fakes import Pipeline, World, fake_deployment


@pytest.fixture
def world() -> World:
    w = World()
    for image in ("app:1.0", "app:2.0", "app:3.0"):
        w.add_image(image)
    return w


def test_each_release_is_recorded_with_its_deploy_and_live_times(p: Pipeline) -> None:
    p.release("app:1.0")
    p.release("app:2.0")
    rows = {row["version"]: row for row in p.ok("releases", releases).extra["releases"]}
    assert set(rows) == {"1.0", "2.0"}
    assert rows["2.0"]["serving_live"] and rows["2.0"]["colors"] == ["green"]
    assert rows["2.0"]["live_since"] and rows["2.0"]["live_until"] is None
    assert not rows["1.0"]["serving_live"] and rows["1.0"]["live_until"], \
        "1.0 stopped being live when 2.0 went live"
    assert rows["1.0"]["colors"] == ["blue"], "the old colour keeps running for a rollback"
    assert rows["1.0"]["verified"] and rows["2.0"]["verified"]


def test_the_table_names_each_release_once_newest_first(p: Pipeline) -> None:
    p.release("app:1.0")
    p.release("app:2.0")
    table = p.ok("releases", releases).display
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "DIGEST"]
    assert [line.split()[0] for line in lines[1:3]] == ["2.0", "1.0"]
    assert "now" in lines[1] and "verified" in lines[1]
    assert render([]).startswith("no release recorded yet")


def test_rollback_to_an_older_release_starts_it_on_the_idle_colour_then_switches(
        p: Pipeline) -> None:
    for image in ("app:1.0", "app:2.0", "app:3.0"):
        p.release(image)  # 1.0 blue, 2.0 green, 3.0 blue (live)
    result = p.ok("rollback", rollback_to, "1.0")
    assert (result.colour, result.live_colour, result.image) == ("green", "green", "app:1.0")
    assert p.world.live == "green" and p.world.starts[-1] == ("green", "app:1.0")
    state = p.state()
    assert p.world.images["app:3.0"] in state["quarantined"], "what was live is quarantined"
    assert "rolled back to 1.0" in state["quarantined"][p.world.images["app:3.0"]]
    again = p.ok("rollback", rollback_to, "1.0")
    assert "already runs" in again.message and p.world.starts[-1] == ("green", "app:1.0")


def test_rollback_to_by_digest_prefix_and_the_refusals(p: Pipeline, world: World) -> None:
    p.release("app:1.0")
    p.release("app:2.0")
    digest = world.images["app:1.0"].removeprefix("sha256:")
    assert p.ok("rollback", rollback_to, digest[:9]).live_colour == "blue"
    # 2.0 is quarantined now: rolling "forward" to it needs the quarantine lifted
    assert "quarantine clear" in p.refused("rollback", rollback_to, "2.0")
    code, result = p.run("rollback", rollback_to, "9.9")
    assert code == 2 and "no recorded release of this app is '9.9'" in result.message
    world.images.pop("app:2.0")  # gone from the target
    p.ok("quarantine", quarantine_clear, "2.0", "fixed upstream")
    assert "no longer on the target" in p.refused("rollback", rollback_to, "2.0")


def test_rollback_to_with_nothing_live_refuses(p: Pipeline) -> None:
    p.deploy("app:1.0")
    assert "nothing is live yet" in p.refused("rollback", rollback_to, "1.0")


def test_quarantine_clear_lets_a_verified_release_be_switched_without_force(p: Pipeline) -> None:
    p.release("app:1.0")
    p.release("app:2.0")
    p.ok("rollback", rollback)  # 2.0 quarantined, blue (1.0) live
    listed = p.ok("quarantine", quarantine_list)
    assert [row["version"] for row in listed.extra["quarantined"]] == ["2.0"]
    assert "quarantined" in p.refused("deploy-green", deploy_green, "app:2.0")
    p.deploy("app:2.0", allow_quarantined=True)
    assert "switch` refuses it until `bgci quarantine clear" in p.ok("verify", verify).message
    refused = p.refused("switch", switch)
    assert "quarantine clear" in refused and "run `bgci verify` first" not in refused
    code, result = p.run("quarantine", quarantine_clear, "2.0", "")
    assert code == 2 and "needs --reason" in result.message
    cleared = p.ok("quarantine", quarantine_clear, "2.0", "the bug was upstream")
    assert "`bgci switch` may send traffic to it" in cleared.message
    p.ok("switch", switch)
    assert p.world.live == "green"
    entry = next(h for h in p.state()["history"] if h["stage"] == "quarantine")
    assert "the bug was upstream" in entry["change"] and entry["who"] == "tester"
    code, result = p.run("quarantine", quarantine_clear, "2.0", "again")
    assert code == 2 and "is not quarantined" in result.message


def test_destroy_lists_what_it_removes_and_refuses_without_yes(p: Pipeline, world: World) -> None:
    p.release("app:1.0")
    message = p.refused("destroy", destroy, images=True, yes=False)
    assert "router fake" in message and "colour blue" in message and "image app:1.0" in message
    assert "--yes" in message and world.instances and world.state is not None
    result = p.ok("destroy", destroy, images=True, yes=True)
    assert world.instances == {} and world.state is None and world.lock is None
    assert "app:1.0" in world.removed and not world.router_running
    assert any(line.startswith("image app:1.0 ") for line in result.extra["removed"])


def test_retire_prune_keeps_what_colours_and_rollbacks_need(p: Pipeline, world: World) -> None:
    world.built[world.add_image("app:0.9")] = 9e99  # built "just now": a pipeline may deploy it
    for image in ("app:1.0", "app:2.0", "app:3.0"):
        p.release(image)  # 1.0 and 3.0 on blue, 2.0 on green: the rollback target
    settings = {"switch": {"retire_after": 0.0}}
    result = p.ok("retire", retire, force=True, prune=True, keep=1, settings=settings)
    assert world.removed == ["app:1.0"], result.checks[-1].message
    p.ok("retire", retire, force=True, prune=True, keep=1, settings=settings)
    assert world.removed == ["app:1.0"], "what the colours and the rollback need stays"


def test_find_release_by_version_image_digest_and_prefix() -> None:
    state = State("shop")
    for image, digest in (("shop:1.0", "sha256:" + "a" * 64), ("shop:2.0", "sha256:ab" + "c" * 62)):
        state.releases[digest] = ReleaseRecord(Release(image, digest))
    assert find_release(state, "1.0").release.image == "shop:1.0"
    assert find_release(state, "shop:2.0").release.image == "shop:2.0"
    assert find_release(state, "abcccccc").release.image == "shop:2.0"
    assert find_release(state, "sha256:" + "a" * 64).release.image == "shop:1.0"
    with pytest.raises(ConfigError, match="names 2 recorded releases"):
        find_release(_ambiguous(), "1.0")
    with pytest.raises(ConfigError, match="no recorded release"):
        find_release(state, "abc")  # too short to be a digest prefix, no such version


def _ambiguous() -> State:
    state = State("shop")
    for digest in ("sha256:" + "1" * 64, "sha256:" + "2" * 64):
        state.releases[digest] = ReleaseRecord(Release("shop:1.0", digest))
    return state


def test_a_tool_picks_the_colour_that_answers_live(tmp_path: Path, p: Pipeline,
                                                   world: World) -> None:
    p.release("app:1.0")
    p.release("app:2.0")
    with fake_deployment(tmp_path, world) as d:
        assert (pick_colour(d, "live"), pick_colour(d, "idle"), pick_colour(d, "blue")) == (
            "green", "blue", "blue")
        printed: list[str] = []
        assert exec_one_off(d, "idle", ["python", "-c", "print(1)"], printed.append) == 0
    assert printed == ["ran python -c 'print(1)' in app:1.0 with []\n"]
