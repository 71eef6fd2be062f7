"""`bgci retire`: stop the idle colour once it has been idle for switch.retire_after seconds."""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import Refused
from bgci.model import Check, StageResult
from bgci.stages.common import history
from bgci.stages.reconcile import conclude, reconcile


def retire(d: Deployment, result: StageResult, *, force: bool = False) -> StageResult:
    with d.locked():
        state, view = reconcile(d, result)
        idle = view.idle
        result.colour = idle
        instance = view.instances.get(idle)
        if view.live is None or instance is None:
            result.message = f"nothing to retire: {idle} runs nothing"
            result.add(Check("retire", "passed", 0.0, result.message))
            d.log.info(result.message)
            conclude(d, result)
            return result
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
            conclude(d, result)
            return result
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
        conclude(d, result)
    return result
