"""Two pipelines at once. The deploy lock lets one proceed; the other waits up to --lock-wait and
then exits 5 naming the holder, or proceeds once the lock is free. A `switch` racing a `rollback`
ends in one consistent state. A lock older than lock.ttl (its holder on another host: no pid to
check) is broken and the log says so; a younger one is respected.

Whoever holds the lock is held still at a known place by a gate (a hook waiting for the test),
so who wins is decided by the test, not by timing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from faults_support import (
    REMOTE_HOLDER,
    TRACEBACK,
    Gate,
    SharedApp,
    assert_one_healthy_colour,
    background,
    finish,
    grouped,
    read_until,
    shared_app,
    take_lock_elsewhere,
)

pytestmark = pytest.mark.e2e

NO_SMOKE = ("--set", "verify.smoke=")


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


@pytest.fixture(scope="module", params=grouped("faults-lock"))
def app(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    with shared_app(request, tmp_path_factory, {"verify.smoke": ""}) as shared:
        yield shared


def holder_pid(text: str) -> int | None:
    found = re.search(r"held by \S+ pid (\d+)", text)
    return int(found.group(1)) if found else None


@pytest.mark.e2e
def test_two_deploys_one_proceeds_one_gives_up_one_waits(app: SharedApp) -> None:
    p = app.p
    image = app.fresh()
    gate = Gate.at(p.root, "deploy")
    hold = ("--set", f"hooks.pre_deploy.command={gate.command()}")
    with background(p, *hold, "deploy-green", "--image", image) as first:
        gate.wait(first)  # holds the deploy lock, inside its pre_deploy hook
        with background(p, "deploy-green", "--image", image, "--lock-wait", "60") as patient:
            read_until(patient, "waiting up to 60s for the deploy lock held by")
            # (p.run checks its reports: deploy-green.json says exit 5 before the others finish)
            impatient = p.run("deploy-green", "--image", image, "--lock-wait", "3", expect=5)
            gate.open()
            won = finish(first)
            waited = finish(patient)

    assert impatient.seconds >= 3, f"gave up after {impatient.seconds:.1f}s, before --lock-wait"
    assert holder_pid(impatient.err) == first.pid and "--lock-wait" in impatient.err, impatient
    assert "waiting up to 3s for the deploy lock" in impatient.err and TRACEBACK not in impatient.text
    assert won.code == 0, won
    assert waited.code == 0, waited
    assert "already runs" in waited.err, "the waiter must see what the winner did"
    status = p.status()
    assert status["lock"] is None
    idle = other(status["live"]) if status["live"] else "blue"
    assert status["colours"][idle]["image"] == image and status["colours"][idle]["candidate"]
    deploys = [h for h in status["history"] if h["stage"] == "deploy-green" and h["image"] == image]
    assert len(deploys) == 1, "only the winner deployed"


@pytest.mark.e2e
def test_switch_racing_rollback(app: SharedApp) -> None:
    p = app.p
    # one release live, a second switched to (the first is previous), then a third deployed and
    # verified on the first's colour (set up with --force: verify is not what this test is about)
    for _ in range(2):
        p.run("deploy-green", "--image", app.fresh())
        p.run("switch", "--force")
    candidate = app.fresh()
    p.run("deploy-green", "--image", candidate)
    p.run(*NO_SMOKE, "verify")
    before = p.status()
    live, idle = before["live"], other(before["live"])
    assert before["previous"] == idle and before["colours"][idle]["candidate"]
    live_digest = before["colours"][live]["digest"]

    gate = Gate.at(p.root, "switch")
    with background(p, "--set", f"hooks.pre_switch.command={gate.command()}", "switch") as switch:
        gate.wait(switch)  # the switch holds the lock
        gave_up = p.run("rollback", "--lock-wait", "2", expect=5)
        with background(p, "rollback", "--lock-wait", "120") as rollback:
            err = read_until(rollback, "waiting up to 120s for the deploy lock held by")
            gate.open()
            switched = finish(switch)
            rolled = finish(rollback, err_so_far=err)

    assert holder_pid(gave_up.err) == switch.pid, gave_up
    assert switched.code == 0, switched
    assert rolled.code == 0, rolled
    # the switch went first (live: idle, running the candidate), then the rollback undid it
    status = p.status()
    assert (status["live"], status["previous"], status["lock"]) == (live, None, None), status
    assert status["colours"][idle]["image"] == candidate
    assert status["colours"][idle]["digest"] in status["quarantined"]
    assert live_digest not in status["quarantined"]
    last = [h["stage"] for h in status["history"][-2:]]
    assert last == ["switch", "rollback"], status["history"][-3:]
    assert_one_healthy_colour(p, live)
    app.status = status


@pytest.mark.e2e
def test_lock_of_another_host_is_respected_until_it_is_stale(app: SharedApp) -> None:
    p = app.p
    status = app.status if app.status is not None else p.status()
    app.status = None
    image = app.fresh()
    take_lock_elsewhere(p, age=20)
    held = p.run("lock", "status")
    assert REMOTE_HOLDER in held.out, held

    # younger than lock.ttl, on another host (its pid cannot be checked here): respected
    blocked = p.run("--set", "lock.ttl=60", "deploy-green", "--image", image, "--lock-wait", "1",
                    expect=5)
    assert f"deploy lock is held by {REMOTE_HOLDER} (https://ci.example/job/7)" in blocked.err
    assert "breaking" not in blocked.err and TRACEBACK not in blocked.text

    # older than lock.ttl: broken, and the log says whose it was
    run = p.run("--set", "lock.ttl=10", "deploy-green", "--image", image, "--lock-wait", "1")
    assert "breaking stale deploy lock (older than lock.ttl=10s)" in run.err, run
    assert REMOTE_HOLDER in run.err
    after = p.status()
    assert after["lock"] is None
    idle = other(status["live"]) if status["live"] else "blue"
    assert after["colours"][idle]["image"] == image and after["colours"][idle]["candidate"]
    app.status = after
