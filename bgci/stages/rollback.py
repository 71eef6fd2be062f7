"""`bgci rollback`: live traffic back to the previous colour, re-created from its digest if gone."""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.faults import checkpoint
from bgci.hooks import run_hook
from bgci.model import Check, Intent, StageResult, State
from bgci.stages.common import confirm, drain, failing_logs, health_check, history
from bgci.stages.reconcile import conclude, reconcile
from bgci.stages.watch import Watch
from bgci.timings import mark


def rollback(d: Deployment, result: StageResult, *, dry_run: bool = False) -> StageResult:
    with d.locked():
        checkpoint("rollback:locked")
        state, _ = reconcile(d, result)
        watch = None if dry_run else Watch(d.router).start()
        try:
            rollback_traffic(d, result, state, reason="rolled back by `bgci rollback`",
                             dry_run=dry_run, watch=watch)
            conclude(d, result)
        finally:
            if watch is not None:
                watch.stop()
                if watch.marks:  # traffic was moved (or meant to be): its picture
                    result.extra["timeline"] = watch.timeline()
                    result.extra["history"] = state.history[-10:]  # for report.html
    return result


def rollback_traffic(d: Deployment, result: StageResult, state: State, *, reason: str,
                     dry_run: bool = False, watch: Watch | None = None) -> None:
    """The rollback itself, from the recorded state; the caller holds the deploy lock.
    ``watch`` marks its moments on the timeline of the stage that runs it."""
    instances = d.platform.instances()
    live, target, release = state.live, state.previous, state.previous_release
    if target is None and live is not None and state.rolled_back_to == live:
        result.colour = live
        result.set_release(instances[live].release if live in instances else None)
        result.message = f"already rolled back: live traffic goes to {live}; nothing to do"
        result.add(Check("rollback", "passed", 0.0, result.message))
        d.log.info(result.message)
        return
    if live is None or target is None or release is None or target == live:
        raise Refused("there is no previous version to roll back to",
                      "rollback needs a completed `bgci switch` since the last rollback")
    result.colour = target
    result.set_release(release)
    bad = instances[live].release if live in instances else state.release_of(live)
    instance = instances.get(target)
    instant = (instance is not None and instance.running
               and instance.release.digest == release.digest)
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
        # with the settings it ran with, not today's config: the previous release as it was
        spec = state.colours[target].spec or d.platform.spec()
        with d.log.group(f"re-create {release.short} on {target}"):
            started = d.platform.start(target, release, spec, d.log)
            d.router.set_backend(target, started.address)
            checkpoint("rollback:recreated")
    check = result.add(failing_logs(d, target, health_check(d, target, f"health {target}")))
    if not check.ok:
        raise CheckFailed(f"{target} ({release.short}) is not healthy; live traffic stays on "
                          f"{live}: {check.message}", "see rollback.xml")
    state.intent = Intent("rollback", target, time.time(), reason)
    d.store.write(state)
    mark("rollback")
    if watch is not None:
        watch.mark("rollback")
    d.router.switch(target)
    checkpoint("rollback:switched")
    confirmation = result.add(confirm(d, target))
    if watch is not None:
        watch.mark("rolled back" if confirmation.ok else "rollback not confirmed")
    if not confirmation.ok:
        d.router.switch(live)
        state.intent = None
        d.store.write(state)
        raise CheckFailed(f"rollback to {target} not confirmed: {confirmation.message}",
                          f"live traffic was put back on {live}")
    state.rolled_back(target, bad, reason)
    history(d, state, "rollback", f"live {live} -> {target}; quarantined "
            f"{bad.short if bad else 'nothing'}", release)
    d.store.write(state)
    checkpoint("rollback:recorded")
    d.log.info(f"live traffic is back on {target} ({release.short}); "
               f"{bad.short if bad else live} is quarantined")
    if watch is not None:
        watch.begin("drain")
    result.add(drain(d, live))
    if watch is not None:
        watch.end("drain")
    run_hook(d, "post_rollback", result, release, target)
