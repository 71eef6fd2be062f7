"""`bgci rollback`: live traffic back to the previous colour, re-created from its digest if gone;
`bgci rollback --to VERSION|DIGEST`: any recorded release still on the target, started on the
idle colour, health-checked, then switched to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.faults import checkpoint
from bgci.hooks import run_hook
from bgci.model import Check, Colour, Release, StageResult
from bgci.record import Intent, State
from bgci.stages.common import confirm, drain, failing_logs, health_check, history
from bgci.stages.reconcile import conclude, reconcile
from bgci.stages.releases import find_release
from bgci.stages.watch import Watch
from bgci.timings import mark


def rollback(d: Deployment, result: StageResult, *, dry_run: bool = False) -> StageResult:
    result.dry_run = dry_run
    with d.locked():
        checkpoint("rollback:locked")
        state, _ = reconcile(d, result)
        with watching(d, result, state, dry_run) as watch:
            rollback_traffic(d, result, state, reason="rolled back by `bgci rollback`",
                             dry_run=dry_run, watch=watch)
            conclude(d, result)
    return result


@contextmanager
def watching(d: Deployment, result: StageResult, state: State,
             dry_run: bool) -> Iterator[Watch | None]:
    """The router's counters watched while traffic moves (none for a dry run); the timeline
    and the recent history go into the stage's report."""
    watch = None if dry_run else Watch(d.router).start()
    try:
        yield watch
    finally:
        if watch is not None:
            watch.stop()
            if watch.marks:  # traffic was moved (or meant to be): its picture
                result.extra["timeline"] = watch.timeline()
                result.extra["history"] = state.history[-10:]  # for report.html


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
        result.changed = True
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
        result.changed = True
        with d.log.group(f"re-create {release.short} on {target}"):
            started = d.platform.start(target, release, spec, d.log)
            d.router.set_backend(target, started.address)
            checkpoint("rollback:recreated")
    _move(d, result, state, live, target, release, bad, reason, watch, settled=instant)


def rollback_to(d: Deployment, result: StageResult, wanted: str, *,
                dry_run: bool = False) -> StageResult:
    """Live traffic to the recorded release ``wanted`` (a version, image or digest), started on
    the idle colour from its digest with the settings it last ran with; what was live is
    quarantined, as by a plain rollback."""
    result.dry_run = dry_run
    with d.locked():
        checkpoint("rollback:locked")
        state, view = reconcile(d, result)
        record = find_release(state, wanted)
        release = record.release
        live = view.live
        result.set_release(release)
        if live is None:
            raise Refused("nothing is live yet: there is nothing to roll back from",
                          f"deploy it with `bgci deploy-green --image {release.image}`, verify "
                          "and switch")
        running = view.running(live)
        if running is not None and running.release.digest == release.digest:
            result.colour = live
            result.message = f"{live} already runs {release.short} live; nothing to do"
            result.add(Check("rollback", "passed", 0.0, result.message))
            d.log.info(result.message)
            conclude(d, result)
            return result
        reason = state.quarantined.get(release.digest)
        if reason:
            raise Refused(f"{release.short} is quarantined: {reason}",
                          f"`bgci quarantine clear {release.digest} --reason ...` lifts it, "
                          "if it is safe again")
        if d.platform.built(release) is None:
            raise Refused(f"{release.short} is no longer on the target (its image or release "
                          "was removed)", "build that version again, then deploy-green, "
                          "verify and switch")
        target = view.idle
        result.colour = target
        bad = running.release if running else state.release_of(live)
        instance = view.running(target)
        ready = instance is not None and instance.release.digest == release.digest
        if dry_run:
            how = "already running there" if ready else "started there first"
            plan = d.router.describe_switch(target)
            result.changed = True
            result.message = (f"dry run: would roll back live {live} -> {target} running "
                              f"{release.short} ({how})")
            result.extra["plan"] = plan
            d.log.info(f"{result.message}\n{plan}")
            return result
        if not ready:
            spec = record.spec or d.platform.spec()
            result.changed = True
            with d.log.group(f"start {release.short} on {target}"):
                started = d.platform.start(target, release, spec, d.log)
                d.router.set_backend(target, started.address)
                checkpoint("rollback:recreated")
            state.deployed(target, release, spec)
            history(d, state, "rollback", f"{target} now runs {release.image} (rollback --to)",
                    release)
            d.store.write(state)
        with watching(d, result, state, dry_run) as watch:
            _move(d, result, state, live, target, release, bad,
                  f"rolled back to {record.version} by `bgci rollback --to`", watch)
            conclude(d, result)
    return result


def _move(d: Deployment, result: StageResult, state: State, live: Colour, target: Colour,
          release: Release, bad: Release | None, reason: str, watch: Watch | None, *,
          settled: bool = False) -> None:
    """Health of ``target`` through the preview (one fresh probe set when it has been running:
    ``settled``), then live traffic to it, confirmed; ``bad`` (what ran live) is quarantined
    with ``reason``; ``live`` is drained and keeps running."""
    check = result.add(failing_logs(d, target, health_check(d, target, f"health {target}",
                                                            settled=settled)))
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
    result.changed = True
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
