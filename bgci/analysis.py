"""Prometheus analysis during the bake: each ``[[analysis]]`` entry's PromQL query, asked
``count`` times ``interval`` seconds apart, each value held to its ``max`` / ``min``.

A query may name the deployment with ``{{app}}``, ``{{colour}}`` (or ``{{color}}``: the colour
being judged) and ``{{digest}}``. It must come down to one number: a scalar, or a vector of one
series (aggregate with ``sum``/``max``); no data, NaN or several series fail the measurement.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import requests

from bgci.model import Check, Colour
from bgci.settings import AnalysisConfig

TIMEOUT = 5.0


def render(query: str, app: str, colour: Colour, digest: str) -> str:
    """The query with the deployment's names put in."""
    for name, value in (("app", app), ("colour", colour), ("color", colour), ("digest", digest)):
        query = query.replace("{{" + name + "}}", value)
    return query


def instant(url: str, query: str) -> float:
    """The one number an instant query returns now (ValueError saying why there is none)."""
    try:
        response = requests.get(url.rstrip("/") + "/api/v1/query", params={"query": query},
                                timeout=TIMEOUT)
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ValueError(f"Prometheus at {url} did not answer: {exc}") from None
    if body.get("status") != "success":
        raise ValueError(f"Prometheus refused the query: {body.get('error', response.text[:200])}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        value = float(result[1])
    elif kind == "vector" and isinstance(result, list):
        if not result:
            raise ValueError("no data (add `or vector(0)` where no series means 0)")
        if len(result) > 1:
            raise ValueError(f"{len(result)} series: aggregate them to one (sum, max, ...)")
        value = float(result[0]["value"][1])
    else:
        raise ValueError(f"a {kind} result: the query must give one number")
    if math.isnan(value):
        raise ValueError("NaN (a ratio of nothing: no traffic yet?)")
    return value


@dataclass
class Analysis:
    """One ``[[analysis]]`` entry being measured: due times from the bake's start."""

    entry: AnalysisConfig
    query: str
    started: float = field(default_factory=time.monotonic)
    values: list[str] = field(default_factory=list)  # each measurement as seen, for the report
    failed: str = ""  # the first failed measurement

    @property
    def done(self) -> bool:
        return bool(self.failed) or len(self.values) >= self.entry.count

    @property
    def seconds(self) -> float:
        """How long the analysis takes: its last measurement is due then."""
        return self.entry.interval * self.entry.count

    def due(self) -> bool:
        return not self.done and time.monotonic() >= self.started + self.entry.interval * (
            len(self.values) + 1)

    def measure(self) -> None:
        """Ask Prometheus once; a value outside ``min``..``max`` or none at all fails it."""
        try:
            value = instant(self.entry.prometheus, self.query)
        except ValueError as exc:
            self.values.append(f"(none: {exc})")
            self.failed = f"measurement {len(self.values)}: {exc}"
            return
        self.values.append(f"{value:g}")
        if value > self.entry.max:
            self.failed = f"measurement {len(self.values)}: {value:g} > max {self.entry.max:g}"
        elif value < self.entry.min:
            self.failed = f"measurement {len(self.values)}: {value:g} < min {self.entry.min:g}"

    def check(self) -> Check:
        """The entry as a JUnit test case, with every value it saw."""
        bounds = " and ".join(part for part in (
            f"<= {self.entry.max:g}" if math.isfinite(self.entry.max) else "",
            f">= {self.entry.min:g}" if math.isfinite(self.entry.min) else "") if part)
        seen = ", ".join(self.values) or "none"
        output = f"query: {self.query}\nPrometheus: {self.entry.prometheus}\nvalues: {seen}"
        elapsed = time.monotonic() - self.started
        name = f"analysis {self.entry.name}"
        if self.failed:
            return Check(name, "failed", elapsed, f"{self.failed} (each must be {bounds}; "
                         f"values seen: {seen})", output)
        if len(self.values) < self.entry.count:
            return Check(name, "skipped", elapsed, f"{len(self.values)} of {self.entry.count} "
                         f"measurements taken before the bake ended (values: {seen})", output)
        return Check(name, "passed", elapsed,
                     f"{len(self.values)} measurements every {self.entry.interval:g}s, each "
                     f"{bounds}: {seen}", output)
