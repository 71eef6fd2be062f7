"""`bgci rollback`: live traffic back to the previous colour, re-created from its digest if gone."""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.faults import checkpoint
from bgci.hooks import run_hook
from bgci.model import Check, Colour, ColourRecord, Release, StageResult, State, other
from bgci.stages.common import confirm, drain, failing_logs, health_check, history, observe
from bgci.timings import mark


def rollback(d: Deployment, result: StageResult, *, dry_run: bool = False) -> StageResult:
    with d.locked():
        rollback_traffic(d, result, reason="rolled back by `bgci rollback`", dry_run=dry_run)
    return result


def rollback_traffic(d: Deployment, result: StageResult, *, reason: str,
                     dry_run: bool = False) -> None:
    """The rollback itself; the caller holds the deploy lock."""
    checkpoint("rollback:locked")
    state = d.store.read()
    view = observe(d, result)
    live, target, release = view.live, state.previous, state.previous_release
    if target is not None and target == live and release is not None and not dry_run:
        # the router was switched back but a killed run never recorded it: finish the bookkeeping
        d.log.info(f"the router already sends live traffic back to {live} but the rollback was "
                   "never recorded (an interrupted run?): recording it now")
        _record(d, state, live, state.release_of(other(live)), release, reason)
        result.colour = live
        result.set_release(release)
        result.message = f"recorded an interrupted rollback: live traffic goes to {live}"
        result.add(Check("rollback", "passed", 0.0, result.message))
        return
    if target is None and live is not None and state.rolled_back_to == live:
        result.colour = live
        result.set_release(view.instances[live].release if live in view.instances else None)
        result.message = f"already rolled back: live traffic goes to {live}; nothing to do"
        result.add(Check("rollback", "passed", 0.0, result.message))
        d.log.info(result.message)
        return
    if live is None or target is None or release is None or target == live:
        raise Refused("there is no previous version to roll back to",
                      "rollback needs a completed `bgci switch` since the last rollback")
    result.colour = target
    result.set_release(release)
    bad = view.instances[live].release if live in view.instances else state.release_of(live)
    instance = view.running(target)
    instant = instance is not None and instance.release.digest == release.digest
    if dry_run:
        how = "instant" if instant else f"re-create {release.short} on {target} first"
        plan = d.router.describe_switch(target)
        result.message = f"dry run: would roll back live {live} -> {target} ({how})"
        result.extra["plan"] = plan
        d.log.info(f"{result.message}\n{plan}")
        return
    if not instant:
        if not d.platform.has(release):
            raise Refused(f"{target} is gone and its image {release.short} is no longer on the "
                          "engine", "deploy a known-good version with deploy-green and switch")
        with d.log.group(f"re-create {release.short} on {target}"):
            started = d.platform.start(target, release, d.log)
            d.router.set_backend(target, started.address)
            state.colours[target] = ColourRecord(release=release, deployed_at=time.time())
            checkpoint("rollback:recreated")
    check = result.add(failing_logs(d, target, health_check(d, target, f"health {target}")))
    if not check.ok:
        raise CheckFailed(f"{target} ({release.short}) is not healthy; live traffic stays on "
                          f"{live}: {check.message}", "see rollback.xml")
    mark("rollback")
    d.router.switch(target)
    checkpoint("rollback:switched")
    confirmation = result.add(confirm(d, target))
    if not confirmation.ok:
        d.router.switch(live)
        raise CheckFailed(f"rollback to {target} not confirmed: {confirmation.message}",
                          f"live traffic was put back on {live}")
    result.live_colour, result.idle_colour = target, live
    _record(d, state, target, bad, release, reason)
    checkpoint("rollback:recorded")
    d.log.info(f"live traffic is back on {target} ({release.short}); "
               f"{bad.short if bad else live} is quarantined")
    result.add(drain(d, live))
    run_hook(d, "post_rollback", result, release, target)


def _record(d: Deployment, state: State, live: Colour, bad: Release | None, release: Release,
            reason: str) -> None:
    """Quarantine what was rolled back and remember that the rollback happened."""
    if bad is not None:
        state.quarantine(bad.digest, f"{reason} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
    state.previous = state.previous_release = None
    state.rolled_back_to = live
    state.candidate = None
    state.colours[other(live)].idle_since = time.time()
    history(d, state, "rollback", f"live {other(live)} -> {live}; quarantined "
            f"{bad.short if bad else 'nothing'}", release)
    d.store.write(state)
