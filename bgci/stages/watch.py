"""The router's counters, read every 100 ms while a switch or rollback runs: what the bake judges
real traffic by, and the timeline the reports draw (requests and errors per colour per 100 ms,
the response times, the moments of decision and cut-over, the bake window).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bgci.metrics import add, p95_ms, since
from bgci.model import COLOURS, Colour
from bgci.ports import Counters, Router, Traffic

STEP = 0.1  # seconds per timeline bucket, and between two readings
RETRY = 1.0  # seconds between readings while the router gives none
LATENCY_WINDOW = 1.0  # seconds of traffic each point of the response-time line covers
LIMIT = 36000  # readings kept: an hour at 100 ms
LEAD = 10.0  # seconds before the first mark the timeline shows (a long pre_switch hook: its end)


@dataclass(frozen=True)
class Reading:
    at: float  # time.time()
    colours: dict[Colour, Traffic]


@dataclass
class Watch:
    """Reads ``router.counters()`` in a thread of its own from ``start`` to ``stop``; marks the
    stage's moments (``mark``) and windows (``begin``/``end``) on the same clock."""

    router: Router
    readings: list[Reading] = field(default_factory=list)
    marks: list[tuple[str, float]] = field(default_factory=list)
    windows: dict[str, list[float]] = field(default_factory=dict)
    source: str = ""
    started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Watch:
        self.started = time.time()
        self._thread = threading.Thread(target=self._run, name="bgci-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._read()  # the last moment, read now

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = STEP if self._read() else RETRY
            self._stop.wait(wait)

    def _read(self) -> bool:
        try:
            found: Counters | None = self.router.counters()
        except Exception:  # counters are a view of traffic, never a reason to fail a switch
            found = None
        if found is None:
            return False
        with self._lock:
            self.source = found.source
            self.readings.append(Reading(found.at, dict(found.colours)))
            del self.readings[:-LIMIT]
        return True

    # -- moments ---------------------------------------------------------------------------
    def mark(self, name: str) -> float:
        at = time.time()
        self.marks.append((name, at))
        return at

    def begin(self, window: str) -> None:
        self.windows[window] = [time.time(), math.inf]

    def end(self, window: str) -> None:
        if window in self.windows:
            self.windows[window][1] = time.time()

    def moment(self, name: str) -> float | None:
        return next((at for mark, at in reversed(self.marks) if mark == name), None)

    # -- what was counted ------------------------------------------------------------------
    @property
    def counting(self) -> bool:
        """Whether the router gave any reading (else the bake judges by its own probes)."""
        return bool(self.readings)

    def between(self, start: float, end: float = math.inf) -> dict[Colour, Traffic]:
        """Per colour, what the router counted from the last reading at or before ``start`` to
        the last reading at or before ``end`` (the counters' own resets taken into account)."""
        with self._lock:
            readings = list(self.readings)
        totals: dict[Colour, Traffic] = {}
        previous: Reading | None = None
        for reading in readings:
            if reading.at > end:
                break
            if previous is not None and reading.at > start:
                for colour, now in reading.colours.items():
                    totals[colour] = add(totals.get(colour, Traffic()),
                                         since(previous.colours.get(colour), now))
            previous = reading
        return totals

    # -- the timeline ------------------------------------------------------------------------
    def timeline(self) -> dict[str, Any]:
        """The stage's timeline as plain data (JSON): ``t0`` (epoch seconds) and ``step``; per
        colour the requests and errors of each step and the response time over the last second
        (``latency``: a p95 where the router keeps a histogram, else its ``mean``); the marks
        and windows in seconds from ``t0``."""
        with self._lock:
            readings = list(self.readings)
        if self.marks:  # from LEAD seconds before the first moment (and the reading before)
            first = min(at for _, at in self.marks) - LEAD
            keep = max([i for i, r in enumerate(readings) if r.at <= first] or [0])
            readings = readings[keep:]
        t0 = readings[0].at if readings else self.started
        end = max([r.at for r in readings] + [at for _, at in self.marks] + [self.started])
        steps = max(1, math.ceil((end - t0) / STEP + 1e-9))
        requests = {c: [0.0] * steps for c in COLOURS}
        errors = {c: [0.0] * steps for c in COLOURS}
        deltas: list[tuple[float, dict[Colour, Traffic]]] = []
        for before, after in itertools.pairwise(readings):
            counted = {c: since(before.colours.get(c), t) for c, t in after.colours.items()}
            deltas.append((after.at, counted))
            for colour, traffic in counted.items():
                _spread(requests[colour], traffic.requests, before.at - t0, after.at - t0)
                _spread(errors[colour], traffic.errors, before.at - t0, after.at - t0)
        has_histogram = any(t.buckets for _, counted in deltas for t in counted.values())
        latency = {c: _latency(deltas, c, t0, steps, has_histogram) for c in COLOURS}
        return {
            "t0": round(t0, 3), "step": STEP, "source": self.source or "",
            "latency_kind": "p95" if has_histogram else "mean",
            "series": {c: {"requests": [round(v, 2) for v in requests[c]],
                           "errors": [round(v, 2) for v in errors[c]],
                           "latency_ms": latency[c]} for c in COLOURS},
            "marks": [{"name": name, "t": round(at - t0, 3)} for name, at in self.marks],
            "windows": [{"name": name, "from": round(a - t0, 3),
                         "to": round((b if math.isfinite(b) else end) - t0, 3)}
                        for name, (a, b) in self.windows.items()],
        }


def _spread(series: list[float], count: int, start: float, end: float) -> None:
    """Add ``count`` over the steps of ``[start, end]`` in proportion to the time in each (the
    requests of one reading are spread evenly over the time it covers)."""
    if count <= 0:
        return
    if end - start <= 0:
        index = min(len(series) - 1, max(0, int(end / STEP)))
        series[index] += count
        return
    i = max(0, int(start / STEP))
    while i < len(series) and i * STEP < end:
        overlap = min(end, (i + 1) * STEP) - max(start, i * STEP)
        if overlap > 0:
            series[i] += count * overlap / (end - start)
        i += 1


def _latency(deltas: list[tuple[float, dict[Colour, Traffic]]], colour: Colour, t0: float,
             steps: int, histogram: bool) -> list[float | None]:
    """Per step, the response time of ``colour`` over the last LATENCY_WINDOW seconds."""
    out: list[float | None] = []
    j = 0
    window: list[tuple[float, Traffic]] = []
    for i in range(steps):
        now = t0 + (i + 1) * STEP
        while j < len(deltas) and deltas[j][0] <= now:
            if colour in deltas[j][1]:
                window.append((deltas[j][0], deltas[j][1][colour]))
            j += 1
        window = [(at, t) for at, t in window if at > now - LATENCY_WINDOW]
        total = Traffic()
        for _, traffic in window:
            total = add(total, traffic)
        if total.requests <= 0:
            out.append(None)
        elif histogram:
            value = p95_ms(total)
            out.append(round(value, 1) if value is not None else None)
        else:
            out.append(round(total.mean_ms, 1) if total.mean_ms is not None else None)
    return out
