"""The bake: watch the new colour for switch.bake seconds after the switch, and judge it.

What it judges, each a JUnit test case of the switch (or rollback):

- ``bake <colour>``: the error rate of the real requests the router counted for the new colour
  (its 5xx answers), bgci's own probes taken out; and of bgci's probes, the floor when there is
  little or no real traffic, or no counters to read;
- ``bake <colour> latency`` (with ``switch.max_p95_ms`` or ``switch.max_p95_increase``): the p95
  of the real requests, against a budget and against the old colour just before the switch;
- ``bake <colour> logs`` (``switch.log_errors``): lines of the new colour's output that match,
  per minute, against ``switch.max_log_errors``;
- ``analysis <name>``: each ``[[analysis]]`` query (bgci.analysis).

A verdict that cannot change (an analysis that failed, the log lines over their limit, an error
rate over the limit across many requests) ends the bake at once.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from bgci.analysis import Analysis, render
from bgci.deployment import Deployment
from bgci.health import probe
from bgci.metrics import p95_ms
from bgci.model import Check, Colour, Outcome
from bgci.ports import Traffic
from bgci.stages.logwatch import LogWatch
from bgci.stages.watch import Watch

MIN_REAL = 20  # real requests under which the probes alone judge (too few to mean anything)
EARLY_REQUESTS = 100  # real requests after which an error rate over the limit ends the bake
LOG_POLL = 1.0  # seconds between two reads of the new colour's output
BASELINE = 10.0  # seconds of the old colour's traffic before the decision it is compared by


@dataclass
class Probes:
    """bgci's own requests through the live address during the bake."""

    sent: int = 0
    failed: int = 0
    server_errors: int = 0  # of the failed ones, those answered 5xx (counted by the router too)
    latencies_ms: list[float] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.failed / self.sent if self.sent else 0.0


@dataclass
class Verdicts:
    """What the bake saw: its checks and the figures behind them (``switch.json``'s ``bake``)."""

    checks: list[Check]
    figures: dict[str, Any]

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def log_watch(d: Deployment, colour: Colour) -> LogWatch | None:
    """The new colour's output from now on (None: switch.log_errors is empty)."""
    if not d.config.switch.log_errors:
        return None
    watch = LogWatch(d.platform, colour, re.compile(d.config.switch.log_errors), "")
    watch.poll()  # takes the cursor: what it wrote before now is not counted
    return watch


def bake(d: Deployment, watch: Watch, live: Colour, old: Colour, *, since: float,
         logs: LogWatch | None, digest: str) -> Verdicts:
    """Watch ``live`` for switch.bake seconds (longer when the analyses need it) from ``since``
    (the confirmed cut-over), then judge what was seen; ends early on a verdict that is in."""
    cfg = d.config
    analyses = [Analysis(entry, render(entry.query, cfg.app, live, digest))
                for entry in cfg.analysis]
    duration = max([cfg.switch.bake] + [a.seconds for a in analyses])
    probes = Probes()
    ended = ""
    d.log.info(f"baking {live} for {duration:.0f}s: " + ", ".join(_watching(d, watch, logs)))
    watch.begin("bake")
    started = time.monotonic()
    next_probe = next_log = started
    with requests.Session() as session:
        while not ended and time.monotonic() - started < duration:
            now = time.monotonic()
            if now >= next_probe:
                _probe(d, session, live, probes)
                next_probe = now + cfg.health.interval
            if logs is not None and now >= next_log:
                logs.poll()
                next_log = now + LOG_POLL
                if _too_many(d, logs):
                    ended = f"{logs.peak} error lines of its output in a minute"
            for analysis in analyses:
                if analysis.due():
                    analysis.measure()
                    ended = ended or (f"analysis {analysis.entry.name}: {analysis.failed}"
                                      if analysis.failed else "")
            real = _real(watch.between(since).get(live), probes)
            if (real is not None and real.requests >= EARLY_REQUESTS
                    and real.errors / real.requests > cfg.switch.max_error_rate):
                ended = f"{real.errors}/{real.requests} real requests failed"
            time.sleep(max(0.0, min(next_probe, next_log, now + 0.2) - time.monotonic()))
    if logs is not None:
        logs.poll()
    watch.end("bake")
    if ended:
        d.log.info(f"the bake of {live} ended after {time.monotonic() - started:.1f}s: {ended}")
    seconds = time.monotonic() - started
    counted = watch.between(since).get(live)
    decided = watch.moment("decision") or since
    baseline = watch.between(max(watch.started, decided - BASELINE), decided).get(old)
    checks, figures = _error_rate(d, watch, live, counted, probes, seconds)
    latency = _latency(d, live, old, _real(counted, probes), baseline, probes, seconds)
    figures.update(latency[1])
    checks += [latency[0]] if latency[0] else []
    if logs is not None:
        checks.append(_logs_check(d, live, logs, seconds))
        figures["log_errors"] = logs.matched
    checks += [analysis.check() for analysis in analyses]
    return Verdicts(checks, figures)


def _watching(d: Deployment, watch: Watch, logs: LogWatch | None) -> list[str]:
    said = [f"real requests from {watch.source}" if watch.counting
            else "bgci's own probes (the router gives no counters)"]
    if logs is not None:
        said.append("its output")
    said += [f"analysis {entry.name}" for entry in d.config.analysis]
    return said


def _probe(d: Deployment, session: requests.Session, live: Colour, probes: Probes) -> None:
    result = probe(session, d.router.live_url, d.config.health, live, d.router.reach)
    probes.sent += 1
    if result.ok:
        probes.latencies_ms.append(result.seconds * 1000)
        return
    probes.failed += 1
    probes.server_errors += result.status >= 500
    probes.details.append(result.detail)


def _too_many(d: Deployment, logs: LogWatch) -> bool:
    limit = d.config.switch.max_log_errors
    return limit >= 0 and logs.peak > limit


def _real(counted: Traffic | None, probes: Probes) -> Traffic | None:
    """What the router counted for the new colour, bgci's own probes taken out."""
    if counted is None:
        return None
    return Traffic(requests=max(0, counted.requests - probes.sent),
                   errors=max(0, counted.errors - probes.server_errors),
                   buckets=counted.buckets, mean_ms=counted.mean_ms)


def _error_rate(d: Deployment, watch: Watch, live: Colour, counted: Traffic | None,
                probes: Probes, seconds: float) -> tuple[list[Check], dict[str, Any]]:
    limit = d.config.switch.max_error_rate
    real = _real(counted, probes)
    figures: dict[str, Any] = {
        "source": watch.source or "bgci's probes", "seconds": round(seconds, 1),
        "probes": probes.sent, "probe_failures": probes.failed,
        "probe_error_rate": round(probes.rate, 4), "max_error_rate": limit}
    said = (f"{probes.failed}/{probes.sent} probes of {d.router.live_url} failed (error rate "
            f"{probes.rate:.3f})")
    failed = probes.rate > limit
    if real is not None and real.requests >= MIN_REAL:
        rate = real.errors / real.requests
        figures.update(requests=real.requests, errors=real.errors, error_rate=round(rate, 4))
        said = (f"{real.errors}/{real.requests} real requests to {live} answered 5xx (error rate "
                f"{rate:.3f}, from {watch.source}); {said}")
        failed = failed or rate > limit
    elif real is not None:
        figures.update(requests=real.requests, errors=real.errors)
        said = (f"{said}; only {real.requests} real request(s) to {live} ({watch.source}): too "
                "few to judge, the probes decide")
    else:
        said = f"{said}; the router gave no counters, so the probes decide"
    message = f"{said} over {seconds:.0f}s; max {limit}"
    check = Check(f"bake {live}", "failed" if failed else "passed", seconds, message,
                  "\n".join(probes.details[-20:]))
    return [check], figures


def _latency(d: Deployment, live: Colour, old: Colour, real: Traffic | None,
             baseline: Traffic | None, probes: Probes, seconds: float
             ) -> tuple[Check | None, dict[str, Any]]:
    """The new colour's response time against switch.max_p95_ms and the old colour's."""
    budget, increase = d.config.switch.max_p95_ms, d.config.switch.max_p95_increase
    figure, what = _figure(real)
    old_figure, _ = _figure(baseline)
    figures: dict[str, Any] = {}
    if figure is not None:
        figures[f"{what.split()[0]}_ms"] = round(figure, 1)
    if old_figure is not None:
        figures[f"baseline_{what.split()[0]}_ms"] = round(old_figure, 1)
    if not budget and not increase:
        return None, figures
    problems, said = [], []
    absolute, absolute_what = figure, what
    if absolute is None or what.startswith("mean"):  # no distribution: bgci's probes
        absolute, absolute_what = _probe_p95(probes), "p95 of bgci's probes"
    if budget:
        if absolute is None:
            said.append(f"no {absolute_what} to hold to switch.max_p95_ms")
        else:
            said.append(f"{absolute_what} {absolute:.0f} ms (max {budget:g})")
            if absolute > budget:
                problems.append(f"{absolute_what} {absolute:.0f} ms > {budget:g} ms")
    if increase:
        if figure is None or old_figure is None:
            said.append(f"no comparison with {old}: too little traffic on "
                        f"{'it before the switch' if old_figure is None else live}")
        else:
            allowed = old_figure * (1 + increase)
            said.append(f"{what} {figure:.0f} ms against {old_figure:.0f} ms on {old} before "
                        f"the switch (at most {allowed:.0f} ms: +{increase:.0%})")
            if figure > allowed:
                problems.append(f"{what} {figure:.0f} ms > {allowed:.0f} ms ({old}'s "
                                f"{old_figure:.0f} ms +{increase:.0%})")
    outcome: Outcome = "failed" if problems else "passed"
    message = "; ".join(problems) if problems else "; ".join(said)
    return Check(f"bake {live} latency", outcome, seconds, message, "; ".join(said)), figures


def _figure(traffic: Traffic | None) -> tuple[float | None, str]:
    """The response time of ``traffic``: a p95 from the router's histogram, else its mean."""
    if traffic is None or traffic.requests < MIN_REAL:
        return None, "p95"
    if traffic.buckets:
        return p95_ms(traffic), "p95 of real requests"
    if traffic.mean_ms:
        return traffic.mean_ms, "mean of the router's last 1024 requests"
    return None, "p95"


def _probe_p95(probes: Probes) -> float | None:
    values = sorted(probes.latencies_ms)
    if len(values) < 5:
        return None
    return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]


def _logs_check(d: Deployment, live: Colour, logs: LogWatch, seconds: float) -> Check:
    limit = d.config.switch.max_log_errors
    name = f"bake {live} logs"
    if logs.error:
        return Check(name, "skipped", seconds, f"{live}'s output could not be read: {logs.error}")
    shown = logs.report()
    if limit >= 0 and logs.peak > limit:
        return Check(name, "failed", seconds,
                     f"{logs.peak} line(s) of {live}'s output matched switch.log_errors within a "
                     f"minute: more than switch.max_log_errors = {limit} ({logs.matched} in "
                     f"{seconds:.1f}s)", shown)
    rule = "report only (switch.max_log_errors = -1)" if limit < 0 else f"at most {limit} a minute"
    return Check(name, "passed", seconds,
                 f"{logs.matched} line(s) of {live}'s output matched switch.log_errors in "
                 f"{seconds:.0f}s; {rule}", shown)
