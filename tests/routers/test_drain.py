"""The drain after a switch: it waits up to switch.drain for what is in flight to the old colour,
then has the router close what is left (``Router.disconnect``) and says so in the report. Where
new clients may still reach the old colour for a while (a DNS record's TTL), it waits that out
whatever switch.drain says."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from bgci.log import StderrLog
from bgci.stages.common import drain


class Router:
    def __init__(self, inflight: list[int], stale: float = 0.0) -> None:
        self.counts = inflight
        self.closed: list[str] = []
        self.stale = stale

    def stale_for(self) -> float:
        return self.stale

    def inflight(self, colour: str) -> int:
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]

    def disconnect(self, colour: str) -> str:
        self.closed.append(colour)
        return f"closed what was left on {colour}"


def deployment(router: Router, seconds: float) -> Any:
    return SimpleNamespace(router=router, config=SimpleNamespace(switch=SimpleNamespace(drain=seconds)),
                           log=StderrLog(0))


def test_what_is_still_open_after_the_drain_is_closed_and_reported() -> None:
    router = Router([2])
    check = drain(deployment(router, 0.3), "blue")
    assert router.closed == ["blue"]
    assert check.ok and "2 request(s) still in flight to blue" in check.message
    assert "closed what was left on blue" in check.message


def test_nothing_is_closed_when_the_old_colour_drained_in_time() -> None:
    router = Router([1, 1, 0])
    check = drain(deployment(router, 5.0), "green")
    assert router.closed == [] and check.ok and "no request in flight to green" in check.message


def test_a_dns_switch_waits_out_the_ttl_even_with_no_drain() -> None:
    router = Router([0], stale=0.6)
    started = time.monotonic()
    check = drain(deployment(router, 0.0), "blue")
    waited = time.monotonic() - started
    assert waited >= 0.6, f"the cut-over was called done {waited:.2f}s after the switch, TTL 0.6s"
    assert check.ok and check.seconds >= 0.6
    assert "waited out the TTL and a second" in check.message and "blue keeps running" in check.message
    assert router.closed == ["blue"]  # what the router says about connections still open
