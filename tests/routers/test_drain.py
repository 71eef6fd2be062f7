"""The drain after a switch: it waits up to switch.drain for what is in flight to the old colour,
then has the router close what is left (``Router.disconnect``) and says so in the report."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bgci.stages.common import drain


class Router:
    def __init__(self, inflight: list[int]) -> None:
        self.counts = inflight
        self.closed: list[str] = []

    def inflight(self, colour: str) -> int:
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]

    def disconnect(self, colour: str) -> str:
        self.closed.append(colour)
        return f"closed what was left on {colour}"


def deployment(router: Router, seconds: float) -> Any:
    return SimpleNamespace(router=router, config=SimpleNamespace(switch=SimpleNamespace(drain=seconds)))


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
