"""Request counters as routers keep them: the Prometheus text format read, histograms summed,
subtracted and turned into a percentile. Shared by the routers that expose Prometheus metrics
(Traefik, Caddy), the one whose log bgci counts itself (nginx) and the bake that judges them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from bgci.ports import Traffic

# Response-time buckets (seconds) where bgci chooses them (its managed Traefik, nginx's log): fine
# enough below a second that a p95 read from them is within a few milliseconds of the truth.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5,
                   2.5, 5.0, 10.0, math.inf)

Sample = tuple[str, dict[str, str], float]
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_text(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition: (metric name, labels, value)."""
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        labels = {key: value.replace('\\"', '"').replace("\\\\", "\\")
                  for key, value in _LABEL.findall(match.group(2) or "")}
        try:
            samples.append((match.group(1), labels, float(match.group(3))))
        except ValueError:
            continue
    return samples


def traffic_by(samples: Iterable[Sample], prefix: str, key: Callable[[dict[str, str]], str | None]
               ) -> dict[str, Traffic]:
    """Requests, 5xx and the latency histogram of ``<prefix>_bucket|_count`` samples (a
    duration histogram with a ``code`` label), summed per ``key(labels)`` (None: skipped)."""
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for name, labels, value in samples:
        group = key(labels)
        if group is None:
            continue
        if name == f"{prefix}_count":
            requests[group] = requests.get(group, 0.0) + value
            if labels.get("code", "").startswith("5"):
                errors[group] = errors.get(group, 0.0) + value
        elif name == f"{prefix}_bucket" and "le" in labels:
            bound = math.inf if labels["le"] in ("+Inf", "Inf") else float(labels["le"])
            per = buckets.setdefault(group, {})
            per[bound] = per.get(bound, 0.0) + value
    return {group: Traffic(requests=int(count), errors=int(errors.get(group, 0.0)),
                           buckets=tuple((b, int(n)) for b, n in sorted(buckets.get(group, {}).items())))
            for group, count in requests.items()}


def since(before: Traffic | None, after: Traffic) -> Traffic:
    """What was counted between two readings (``after`` alone when the counters went back: the
    router restarted in between)."""
    if before is None or after.requests < before.requests:
        return after
    old = dict(before.buckets)
    return Traffic(requests=after.requests - before.requests,
                   errors=max(0, after.errors - before.errors),
                   buckets=tuple((bound, max(0, count - old.get(bound, 0)))
                                 for bound, count in after.buckets),
                   mean_ms=after.mean_ms)


def add(a: Traffic, b: Traffic) -> Traffic:
    """Two windows of counts as one."""
    merged: dict[float, int] = dict(a.buckets)
    for bound, count in b.buckets:
        merged[bound] = merged.get(bound, 0) + count
    return Traffic(requests=a.requests + b.requests, errors=a.errors + b.errors,
                   buckets=tuple(sorted(merged.items())), mean_ms=b.mean_ms or a.mean_ms)


def quantile(q: float, buckets: tuple[tuple[float, int], ...]) -> float | None:
    """The ``q`` quantile (0-1) in seconds of a cumulative histogram, interpolated within its
    bucket as Prometheus' ``histogram_quantile`` does (None: no observation)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: that bound is all that is known
            within = count - below
            return lower + (bound - lower) * ((rank - below) / within if within else 1.0)
        lower, below = bound, count
    return lower


def cumulative(durations: Iterable[float], bounds: tuple[float, ...] = LATENCY_BUCKETS
               ) -> tuple[tuple[float, int], ...]:
    """A cumulative histogram (``bounds``) of response times in seconds."""
    counts = [0] * len(bounds)
    for seconds in durations:
        for i, bound in enumerate(bounds):
            if seconds <= bound:
                counts[i] += 1
                break
    running, out = 0, []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        out.append((bound, running))
    return tuple(out)


def p95_ms(traffic: Traffic) -> float | None:
    """The 95th percentile response time of ``traffic`` in milliseconds (None: unknown)."""
    value = quantile(0.95, traffic.buckets)
    return None if value is None else value * 1000
