"""`bgci retire`: stop the idle colour once it has been idle for switch.retire_after seconds; with
``prune``, also remove the releases (images, release dirs) that no colour and no rollback needs."""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import Refused
from bgci.model import Check, StageResult
from bgci.record import State
from bgci.stages.common import View, history
from bgci.stages.reconcile import conclude, reconcile


def retire(d: Deployment, result: StageResult, *, force: bool = False, prune: bool = False,
           keep: int = 3) -> StageResult:
    with d.locked():
        state, view = reconcile(d, result)
        _retire(d, result, state, view, force)
        if prune:
            _prune(d, result, state, keep)
        conclude(d, result)
    return result


def _retire(d: Deployment, result: StageResult, state: State, view: View, force: bool) -> None:
    idle = view.idle
    result.colour = idle
    instance = view.instances.get(idle)
    if view.live is None or instance is None:
        result.message = f"nothing to retire: {idle} runs nothing"
        result.add(Check("retire", "passed", 0.0, result.message))
        d.log.info(result.message)
        return
    result.set_release(instance.release)
    if state.candidate == idle and not force:
        raise Refused(f"{idle} runs {instance.release.short}, deployed but not yet switched",
                      "switch to it or deploy again; `bgci retire --force` discards it")
    age = time.time() - (state.colours[idle].idle_since or instance.started_at)
    wait = d.config.switch.retire_after
    if age < wait and not force:
        result.message = (f"{idle} has been idle {age:.0f}s, less than switch.retire_after="
                          f"{wait:.0f}s: left running for an instant rollback")
        result.add(Check("retire", "skipped", 0.0, result.message))
        d.log.info(result.message)
        return
    prev = state.previous_release
    if state.previous == idle and prev and not d.platform.has(prev) and not force:
        raise Refused(f"{idle} is the only way back to {prev.short}: its image is gone from "
                      "the engine", "`bgci retire --force` gives up that rollback")
    started = time.monotonic()
    result.changed = True
    d.router.set_backend(idle, None)
    d.platform.stop(idle, d.config.switch.drain, d.log)
    result.add(Check("retire", "passed", time.monotonic() - started,
                     f"stopped {idle} ({instance.release.short}) after {age:.0f}s idle"))
    history(d, state, "retire", f"stopped {idle}", instance.release)
    d.store.write(state)


def _prune(d: Deployment, result: StageResult, state: State, keep: int) -> None:
    """Remove the releases bgci built for the app that nothing needs: not what a colour runs or
    was started with, not the rollback target, not among the ``keep`` newest deployed (for
    `rollback --to`), and not built in the last switch.retire_after seconds (a pipeline may be
    between its build and its deploy-green)."""
    started = time.monotonic()
    needed = {r.digest for r in (*(c.release for c in state.colours.values()),
                                 state.previous_release) if r is not None}
    needed |= {i.release.digest for i in d.platform.instances().values()}
    newest = sorted(state.releases.values(), key=lambda r: r.deployed_last, reverse=True)
    needed |= {r.release.digest for r in newest[:max(keep, 0)]}
    young = time.time() - d.config.switch.retire_after
    removed = []
    for release in d.platform.releases():
        built = d.platform.built(release)
        if release.digest in needed or built is None or built > young:
            continue
        d.platform.remove(release)
        removed.append(release.short)
    message = (f"pruned {len(removed)} release(s) no colour or rollback needs"
               + (f": {', '.join(removed)}" if removed else "")
               + f" (kept the {keep} newest deployed and those the colours need)")
    result.add(Check("prune", "passed", time.monotonic() - started, message))
    if removed:
        result.changed = True
        history(d, state, "retire", message, None)
        d.store.write(state)
    d.log.info(message)
