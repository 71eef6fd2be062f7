"""`bgci down` and `bgci up`: take the app offline on purpose, and bring it back as recorded.

`down` stops both colours and the managed router and records who did it and when; the state
(history, verified and quarantined digests, what each colour ran and how), the releases or images
and the router's files stay. Every other stage refuses while the app is down (exit 4, naming
`bgci up`), so that no pipeline turns live traffic back on by accident. `up` starts the live colour
from its recorded release and settings, and the router sending live traffic to it, and proves it
with requests through the live address.
"""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import CheckFailed
from bgci.model import COLOURS, Check, StageResult, iso
from bgci.stages.common import history
from bgci.stages.reconcile import live_line, reconcile


def down(d: Deployment, result: StageResult) -> StageResult:
    with d.locked():
        state = d.store.read()
        instances = d.platform.instances()
        result.live_url, result.preview_url = d.router.live_url, d.router.preview_url
        # down again: the router and the colours were stopped by the first (unless someone
        # started one by hand since)
        result.changed = not state.down or any(i.running for i in instances.values())
        state.down = {"by": d.who.holder, "at": iso(time.time())}
        d.store.write(state)  # first: a down cut short is still a down (the next stage refuses)
        started = time.monotonic()
        d.router.stop(d.log)
        result.add(Check("stop router", "passed", time.monotonic() - started,
                         "the managed router is stopped; its files keep the live colour"))
        stopped = []
        for colour in COLOURS:
            if colour not in instances:
                continue
            started = time.monotonic()
            d.platform.stop(colour, d.config.switch.drain, d.log)
            stopped.append(colour)
            result.add(Check(f"stop {colour}", "passed", time.monotonic() - started,
                             f"stopped {colour} ({instances[colour].release.short})"))
        result.message = (f"stopped the router and {' and '.join(stopped) or 'no colour'}; "
                          "state and releases are kept; `bgci up` brings the app back")
        history(d, state, "down", result.message, None)
        d.store.write(state)
        d.log.info(result.message)
    return result


def up(d: Deployment, result: StageResult) -> StageResult:
    with d.locked():
        state = d.store.read()
        was = state.down
        if was:
            state.down = None
            result.changed = True
            d.store.write(state)
        state, view = reconcile(d, result)  # starts the live colour and the router as recorded
        live = view.live
        if live is None:
            result.message = "nothing was ever switched live: nothing to bring up"
            result.add(Check("up", "passed", 0.0, result.message))
            d.log.info(result.message)
            return result
        seen = d.found
        assert seen is not None
        result.live_colour, result.observed = seen.colour, True
        result.set_release(state.release_of(live))
        result.colour = live
        if seen.colour != live:
            raise CheckFailed(f"live traffic is not served by {live} after `bgci up`: "
                              f"{seen.detail}", "up.xml has the health checks; `bgci status` "
                              "shows each colour")
        result.message = (f"{d.config.app} is up: {live_line(seen)}"
                          + (f" (down since {was.get('at')})" if was else " (it was not down)"))
        result.add(Check("live traffic", "passed", 0.0, seen.detail))
        history(d, state, "up", result.message, state.release_of(live))
        d.store.write(state)
        d.log.info(result.message)
    return result
