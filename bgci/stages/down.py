"""`bgci down`: stop both colours and the managed router: the app goes offline, nothing is lost.

The state (history, verified and quarantined digests), the releases or images and the router's
files stay: the next `bgci deploy-green` starts the router again with the live colour it had.
"""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.model import COLOURS, Check, StageResult
from bgci.stages.common import history


def down(d: Deployment, result: StageResult) -> StageResult:
    with d.locked():
        state = d.store.read()
        instances = d.platform.instances()
        result.live_url, result.preview_url = d.router.live_url, d.router.preview_url
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
                          "state and releases are kept")
        history(d, state, "down", result.message, None)
        d.store.write(state)
        d.log.info(result.message)
    return result
