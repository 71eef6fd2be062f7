"""From raw request records and switch events to the figures the benchmark publishes.

A record is ``[start, end, kind, status, colour, error]`` (see ``bench/load.py``); an event is one
switch or rollback: when its command started and ended, when it decided (bgci: the moment it told
the router; a baseline: the start of its command) and which colour it moves traffic from and to.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Record = Sequence[Any]
BIN = 0.1  # seconds per bin of the chart's series
WINDOW = (-1.0, 8.0)  # seconds around the decision that the chart shows
TIMEOUT = 5.0  # the load client's request timeout (bench/load.py)
AROUND = 1.0  # requests started up to this long after a command ended count as "around the switch"


@dataclass
class Event:
    """One switch (or rollback): epoch seconds, and the colours it moves live traffic between."""

    name: str  # "switch" or "rollback"
    start: float
    end: float
    decision: float
    old: str
    new: str
    ok: bool = True
    note: str = ""
    settled: float = 0.0  # when the new colour was seen answering (default: the command's end)

    def __post_init__(self) -> None:
        self.settled = self.settled or self.end


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(round(q / 100 * len(ordered), 9))
    return ordered[max(rank, 1) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def event_figures(records: Sequence[Record], event: Event, until: float) -> dict[str, Any]:
    """What the load saw of one event: requests sent from its start until it settled (+1 s).

    ``first_new_ms`` / ``last_old_ms``: from the command's start to the first response from the
    new colour and to the last response from the old one. ``cutover_ms``: from the decision until
    every request started afterwards was answered, successfully, by the new colour.
    """
    until = min(until, event.settled + AROUND)
    window = [r for r in records if event.start <= r[0] < until]
    new_ends = [r[1] for r in window if not r[5] and r[4] == event.new]
    old_ends = [r[1] for r in window if not r[5] and r[4] == event.old]
    # a failure, or an answer from another colour (a POST through no router has no colour to tell)
    not_new = [r[0] for r in window if r[0] >= event.decision and (r[5] or r[4] not in ("", event.new))]
    lost = [r for r in window if r[5]]
    return {
        **{k: v for k, v in asdict(event).items() if k not in ("start", "end", "decision", "settled")},
        "command_ms": _ms(event.end - event.start),
        "decision_ms": _ms(event.decision - event.start),
        "first_new_ms": _ms(min(new_ends) - event.start) if new_ends else None,
        "last_old_ms": _ms(max(old_ends) - event.start) if old_ends else None,
        "cutover_ms": _ms(max(not_new) - event.decision) if not_new else 0.0,
        "lost": len(lost),
        "sent": len(window),
    }


def summarize(records: Sequence[Record], events: Sequence[Event], began: float,
              ended: float) -> dict[str, Any]:
    """Requests lost, latency and per-event figures for one row of the benchmark."""
    records = [r for r in records if began <= r[0] < ended]
    ok = [r for r in records if not r[5]]
    lost = [r for r in records if r[5]]
    latencies = [(r[1] - r[0]) * 1000 for r in ok]
    around = [(r[1] - r[0]) * 1000 for r in ok
              if any(e.start <= r[0] <= e.end + AROUND for e in events)]
    figures = []
    starts = [r[0] for r in records]
    for i, event in enumerate(events):
        until = events[i + 1].start if i + 1 < len(events) else ended
        mine = records[bisect.bisect_left(starts, event.start):bisect.bisect_left(starts, until)]
        figures.append(event_figures(mine, event, until))
    errors: dict[str, int] = {}
    for r in lost:
        key = str(r[5]).split(":")[0]
        errors[key] = errors.get(key, 0) + 1
    seconds = max(ended - began, 1e-9)
    return {
        "sent": len(records), "lost": len(lost), "seconds": round(seconds, 1),
        "requests_per_second": round(len(records) / seconds, 1),
        "posts": sum(1 for r in records if r[2] == "P"),
        "p50_ms": _round(percentile(latencies, 50)), "p99_ms": _round(percentile(latencies, 99)),
        "p99_around_switch_ms": _round(percentile(around, 99)),
        "max_ms": _round(max(latencies) if latencies else None),
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "error_samples": sorted({str(r[5]) for r in lost})[:5],
        "events": figures,
        "series": series(records, events, began, ended),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def series(records: Sequence[Record], events: Sequence[Event], began: float = float("-inf"),
           ended: float = float("inf")) -> dict[str, list[Any]]:
    """Per 100 ms bin around the decision, over all events: requests started, failed, p50 and p99
    latency (by start), and successful responses per second (by completion, averaged over the
    events whose own time covers the bin: it drops to 0 while nothing answers)."""
    lo, hi = WINDOW
    bins = round((hi - lo) / BIN)
    latencies: list[list[float]] = [[] for _ in range(bins)]
    sent, failed, answered, covered = [0] * bins, [0] * bins, [0] * bins, [0] * bins
    starts = [r[0] for r in records]
    for i, event in enumerate(events):
        # each request counts for one event: from when the previous one settled to the next one
        first = max(event.decision + lo, events[i - 1].settled if i else began)
        last = min(event.decision + hi, events[i + 1].start if i + 1 < len(events) else ended)
        for b in range(bins):
            edge = event.decision + lo + b * BIN
            covered[b] += first <= edge and edge + BIN <= last
        for r in records[bisect.bisect_left(starts, first - TIMEOUT):bisect.bisect_left(starts, last)]:
            if not r[5] and first <= r[1] < last:
                answered[int((r[1] - event.decision - lo) / BIN)] += 1
            if r[0] < first:
                continue
            b = int((r[0] - event.decision - lo) / BIN)
            sent[b] += 1
            if r[5]:
                failed[b] += 1
            else:
                latencies[b].append((r[1] - r[0]) * 1000)
    return {
        "t": [round(lo + (b + 0.5) * BIN, 2) for b in range(bins)],
        "sent": sent, "failed": failed,
        "ok_per_s": [round(a / c / BIN, 1) if c else None for a, c in zip(answered, covered, strict=True)],
        "p50_ms": [_round(percentile(v, 50)) for v in latencies],
        "p99_ms": [_round(percentile(v, 99)) for v in latencies],
    }


def stats(values: Iterable[float | None]) -> dict[str, float | None]:
    """Median, max and count of the values that are not None."""
    present = [v for v in values if v is not None]
    return {"median": _round(percentile(present, 50)), "max": _round(max(present) if present else None),
            "n": len(present)}


def latency_summary(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Switch and rollback latency of one row: medians and maxima over its events."""
    out: dict[str, Any] = {}
    for name in ("switch", "rollback"):
        mine = [f for f in figures if f["name"] == name]
        out[name] = {key: stats(f[key] for f in mine)
                     for key in ("command_ms", "decision_ms", "first_new_ms", "last_old_ms", "cutover_ms")}
    return out
