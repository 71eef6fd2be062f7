"""`bgci switch`: atomically send live traffic to the verified idle colour, confirm, drain, bake."""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.faults import checkpoint
from bgci.hooks import run_hook
from bgci.model import Check, Colour, Release, StageResult, other
from bgci.record import Intent, State
from bgci.stages.bake import bake, log_watch
from bgci.stages.common import (
    View,
    confirm,
    drain,
    failing_logs,
    health_check,
    history,
    serving,
)
from bgci.stages.logwatch import LogWatch
from bgci.stages.reconcile import conclude, live_line, reconcile
from bgci.stages.rollback import rollback_traffic
from bgci.stages.verify import candidate_release, smoke_after_pre_switch
from bgci.stages.watch import Watch
from bgci.timings import mark

PRECHECK_DEADLINE = 15.0
HISTORY = 10  # entries of the history a switch's reports show
MIN_BASELINE = 1.0  # seconds of the old colour's traffic watched before the decision, at least,
# when the bake compares the new colour's latency with it (switch.max_p95_increase)


def switch(d: Deployment, result: StageResult, *, force: bool = False, dry_run: bool = False,
           digest: str = "") -> StageResult:
    """Live traffic to the candidate (verified, healthy, and ``digest`` when given), confirmed
    through the live address; the old colour keeps running for an instant rollback. Nothing to
    do when the candidate is live already, or ``digest`` serves live traffic already."""
    result.dry_run = dry_run
    with d.locked():
        checkpoint("switch:locked")
        state, view = reconcile(d, result)
        target = state.candidate
        if target is not None and target == view.live:
            _record_interrupted(d, result, state, target, view)
            target = None
        if target is None or serving(d, view, digest) is not None:
            return _nothing_to_do(d, result, view)
        if view.running(target) is None:
            raise Refused(f"{target} was deployed but is not running",
                          "run `bgci deploy-green` again")
        release = candidate_release(view, target, digest)
        result.colour = target
        result.set_release(release)
        if not state.is_verified(release.digest):
            quarantined = state.quarantined.get(release.digest)
            why = (f"is quarantined ({quarantined})" if quarantined
                   else "has not passed `bgci verify`")
            if not force:
                raise Refused(f"{target} runs {release.short}, which {why}",
                              f"`bgci quarantine clear {release.digest} --reason ...` lifts the "
                              "quarantine when it is safe again (then verify, unless it passed "
                              "already), or `bgci switch --force` overrides it" if quarantined
                              else "run `bgci verify` first (or `bgci switch --force` to "
                              "override)")
            d.log.info(f"--force: switching to {target} although it {why}")
        watch = Watch(d.router).start()  # from here: the old colour's traffic before the switch
        try:
            _switch(d, result, state, view, target, release, watch, dry_run=dry_run)
        finally:
            watch.stop()
            if not dry_run:
                result.extra["timeline"] = watch.timeline()
                result.extra["history"] = state.history[-HISTORY:]  # for report.html
    return result


def _switch(d: Deployment, result: StageResult, state: State, view: View, target: Colour,
            release: Release, watch: Watch, *, dry_run: bool) -> None:
    # a verified candidate was seen healthy by deploy-green and verify: one fresh probe set
    check = result.add(failing_logs(d, target, health_check(
        d, target, f"health {target} before switch",
        deadline=min(d.config.health.deadline, PRECHECK_DEADLINE),
        settled=state.is_verified(release.digest))))
    if not check.ok:
        raise Refused(f"{target} is not healthy, so live traffic stays on {view.live}: "
                      f"{check.message}", "see switch.xml; fix it and deploy again")
    old = view.live
    if dry_run:
        plan = d.router.describe_switch(target)
        result.changed = True
        result.message = f"dry run: would switch live traffic {old or 'nothing'} -> {target}"
        result.extra["plan"] = plan
        d.log.info(f"{result.message}\n{plan}")
        return
    run_hook(d, "pre_switch", result, release, target)
    if d.config.verify.against_blue:
        smoke_after_pre_switch(d, result, target, old)
    baking = d.config.switch.bake > 0 and old is not None
    logs = log_watch(d, target) if baking else None  # its output from the cut-over on
    if baking and d.config.switch.max_p95_increase > 0:
        # the new colour is judged against the old one just before the switch: let the router
        # count some of its traffic first (the fresh health probes above take ~0.1 s)
        time.sleep(max(0.0, watch.started + MIN_BASELINE - time.time()))
    state.intent = Intent("switch", target, time.time())
    d.store.write(state)  # a run killed from here on is finished (or undone) by the next one
    started = time.monotonic()
    mark("switch")
    watch.mark("decision")
    d.router.switch(target)
    watch.mark("cut-over")
    decided = time.monotonic() - started
    checkpoint("switch:switched")
    confirmation = result.add(confirm(d, target))
    if not confirmation.ok:
        if old is not None:
            d.router.switch(old)
            watch.mark("put back")
        state.intent = None
        d.store.write(state)
        raise CheckFailed(f"switch to {target} not confirmed: {confirmation.message}",
                          f"live traffic was put back on {old or 'nothing'}")
    confirmed = watch.mark("confirmed")
    result.extra["switch_seconds"] = round(decided, 4)
    checkpoint("switch:confirmed")
    state.switched(target, old)
    result.changed = True
    history(d, state, "switch", f"live {old or 'nothing'} -> {target}", release)
    d.store.write(state)
    checkpoint("switch:recorded")
    d.log.info(f"live traffic now goes to {target} ({release.short})")
    if old is not None:
        watch.begin("drain")
        result.add(drain(d, old))
        watch.end("drain")
    if baking and old is not None:
        _bake(d, result, state, target, old, watch, logs, since=confirmed, digest=release.digest)
    run_hook(d, "post_switch", result, release, target)
    conclude(d, result)


def _record_interrupted(d: Deployment, result: StageResult, state: State, live: Colour,
                        view: View) -> None:
    """The router sends traffic to the candidate, recorded live, but the switch itself was never
    recorded (a run of bgci 0.1, which wrote no intent, killed after the switch)."""
    old = other(live)
    d.log.info(f"the router already sends live traffic to {live} but the switch was never recorded "
               "(an interrupted run?): recording it now")
    state.switched(live, old if state.release_of(old) else None)
    result.changed = True
    instance = view.running(live)
    history(d, state, "switch", f"recorded interrupted switch to {live}",
            instance.release if instance else state.release_of(live))
    d.store.write(state)


def _nothing_to_do(d: Deployment, result: StageResult, view: View) -> StageResult:
    live = view.live
    instance = view.running(live) if live else None
    if live is None or instance is None:
        raise Refused("there is no deployed colour to switch to", "run `bgci deploy-green` first")
    result.colour = live
    result.set_release(instance.release)
    seen = conclude(d, result)
    result.message = (f"{live} is already live ({instance.release.short}); nothing to switch; "
                      f"{live_line(seen)}")
    result.add(Check("switch", "passed", 0.0, result.message))
    d.log.info(result.message)
    return result


def _bake(d: Deployment, result: StageResult, state: State, live: Colour, old: Colour,
          watch: Watch, logs: LogWatch | None, *, since: float, digest: str) -> None:
    """Watch live traffic for switch.bake s; on any failed verdict roll back by itself."""
    verdicts = bake(d, watch, live, old, since=since, logs=logs, digest=digest)
    for check in verdicts.checks:
        result.add(check)
    result.extra["bake"] = verdicts.figures
    if not verdicts.failed:
        return
    why = "; ".join(f"{check.name}: {check.message}" for check in verdicts.failed)
    d.log.info(f"bake failed ({why}): rolling back to {old}")
    rollback_traffic(d, result, state, reason=f"bake failed: {why}", watch=watch)
    raise CheckFailed(f"bake of {live} failed and live traffic was rolled back to {old}: {why}",
                      "see switch.xml; the digest is quarantined")
