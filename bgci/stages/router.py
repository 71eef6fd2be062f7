"""`bgci router reboot`: apply router settings that need a new router (router.kind, router.image,
router.listen / router.preview, a new template of bgci's), which no stage applies on the side.

The old router is stopped and the new one started sending live traffic to the colour the state
says is live; live traffic is cut in between. A probe through the live address runs for the
whole time and the report says how long nothing answered and how many of its requests failed.
"""

from __future__ import annotations

import threading
import time

import requests

from bgci.deployment import Deployment
from bgci.health import observe
from bgci.model import Check, StageResult
from bgci.stages.common import history
from bgci.stages.reconcile import conclude, live_line

PROBE_INTERVAL = 0.02


class _Gap:
    """Requests through the live address every 20 ms while the router restarts: the cut, measured."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = self.failed = 0
        self.first_failure = self.last_failure = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Gap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                ok = requests.get(self.url, timeout=1, headers={"Connection": "close"}).ok
            except requests.RequestException:
                ok = False
            self.sent += 1
            if not ok:
                self.failed += 1
                self.first_failure = self.first_failure or now
                self.last_failure = time.monotonic()
            self._stop.wait(PROBE_INTERVAL)

    @property
    def seconds(self) -> float:
        return self.last_failure - self.first_failure if self.failed else 0.0


def reboot(d: Deployment, result: StageResult) -> StageResult:
    with d.locked():
        state = d.store.read()
        result.live_url, result.preview_url = d.router.live_url, d.router.preview_url
        changes = d.router.changes()
        instances = d.platform.instances()
        backends = {c: i.address for c, i in instances.items() if i.running}
        what = "; ".join(changes) if changes else "no setting changed: a plain restart"
        d.found = observe(d.router.live_url, d.config.health, reach=d.router.reach)
        d.log.info(f"rebooting the router ({what}); live traffic is cut until it is back")
        started = time.monotonic()
        result.changed = True
        with _Gap(d.router.live_url + d.config.health.path) as gap:
            d.router.reboot(backends, state.live, d.log)
            seen = conclude(d, result)
        result.add(Check("router reboot", "passed", time.monotonic() - started,
                         f"{what}; {gap.failed} of {gap.sent} probe requests through "
                         f"{d.router.live_url} failed, over {gap.seconds:.2f}s"))
        result.extra["reboot"] = {"changes": changes, "probes": gap.sent, "failed": gap.failed,
                                  "cut_seconds": round(gap.seconds, 3)}
        result.message = (f"router rebooted ({what}); live traffic was cut for "
                          f"{gap.seconds:.2f}s ({gap.failed} of {gap.sent} probes failed); "
                          f"{live_line(seen)}")
        history(d, state, "router", f"reboot: {what}", None)
        d.store.write(state)
        d.log.info(result.message)
    return result
