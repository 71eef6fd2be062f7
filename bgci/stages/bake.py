"""The bake: probe the live address for switch.bake seconds and measure its error rate."""

from __future__ import annotations

import time

import requests

from bgci.deployment import Deployment
from bgci.health import probe
from bgci.model import Check, Colour, Outcome


def bake(d: Deployment, live: Colour) -> Check:
    cfg, limit = d.config.health, d.config.switch.bake
    started = time.monotonic()
    sent = failed = 0
    errors: list[str] = []
    with requests.Session() as session:
        while time.monotonic() - started < limit:
            result = probe(session, d.router.live_url, cfg, live, d.router.reach)
            sent += 1
            if not result.ok:
                failed += 1
                errors.append(result.detail)
            time.sleep(cfg.interval)
    rate = failed / sent if sent else 0.0
    message = (f"{failed}/{sent} probes of {d.router.live_url} failed over {limit:.0f}s "
               f"(error rate {rate:.3f}, max {d.config.switch.max_error_rate})")
    outcome: Outcome = "passed" if rate <= d.config.switch.max_error_rate else "failed"
    return Check(f"bake {live}", outcome, time.monotonic() - started, message,
                 "\n".join(errors[-20:]))
