"""HTTP health probes with requests: path, status, body substring, Host header, consecutive passes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import requests

from bgci.log import Log
from bgci.model import COLOURS, Check, Colour, Observation
from bgci.settings import HealthConfig
from bgci.timings import waits_on

COLOUR_HEADER = "X-Bgci-Color"


@dataclass
class Probe:
    ok: bool
    seconds: float
    detail: str
    colour: str = ""


@dataclass
class ProbeSeries:
    """The probes one wait made; latencies feed the p95 budget."""

    probes: list[Probe] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [p.seconds * 1000 for p in self.probes if p.ok]


def probe(session: requests.Session, url: str, cfg: HealthConfig, colour: Colour | None) -> Probe:
    """One request to ``url + cfg.path``; ok when status, body and (if given) colour all match."""
    headers = {"Host": cfg.host} if cfg.host else {}
    started = time.perf_counter()
    try:
        response = session.get(url + cfg.path, headers=headers, timeout=cfg.timeout,
                               allow_redirects=False)
    except requests.RequestException as exc:
        return Probe(False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    seen = response.headers.get(COLOUR_HEADER, "")
    if response.status_code != cfg.status:
        body = response.text[:200].strip()
        return Probe(False, seconds, f"HTTP {response.status_code}, expected {cfg.status}: {body}",
                     seen)
    if cfg.contains and cfg.contains not in response.text:
        return Probe(False, seconds, f"body does not contain {cfg.contains!r}", seen)
    if colour and seen and seen != colour:
        return Probe(False, seconds, f"answered by {seen}, expected {colour}", seen)
    return Probe(True, seconds, f"HTTP {response.status_code} in {seconds * 1000:.0f} ms", seen)


@waits_on("app")
def wait_healthy(
    url: str,
    cfg: HealthConfig,
    log: Log,
    *,
    name: str,
    colour: Colour | None = None,
    deadline: float | None = None,
    series: ProbeSeries | None = None,
) -> Check:
    """Probe until ``cfg.successes`` in a row pass, or ``deadline`` (default cfg.deadline) passes."""
    limit = cfg.deadline if deadline is None else deadline
    series = series if series is not None else ProbeSeries()
    started = time.monotonic()
    streak, last = 0, ""
    transcript: list[str] = []
    with requests.Session() as session:
        while True:
            result = probe(session, url, cfg, colour)
            series.probes.append(result)
            elapsed = time.monotonic() - started
            transcript.append(f"{elapsed:6.1f}s {'ok  ' if result.ok else 'FAIL'} {result.detail}")
            streak = streak + 1 if result.ok else 0
            if result.detail != last:
                log.debug(f"health {url}{cfg.path}: {result.detail}")
                last = result.detail
            if streak >= cfg.successes:
                return Check(name, "passed", elapsed,
                             f"{streak} consecutive successes at {url}{cfg.path}",
                             "\n".join(transcript[-50:]))
            if elapsed >= limit:
                return Check(
                    name, "failed", elapsed,
                    f"not healthy after {limit:.0f}s at {url}{cfg.path}: {result.detail}",
                    "\n".join(transcript[-50:]),
                )
            time.sleep(cfg.interval)


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(round(0.95 * len(ordered), 9))  # nearest rank, 1-based; 0.95 * 100 > 95 in floats
    return ordered[max(rank, 1) - 1]


OBSERVE_REQUESTS = 3


@waits_on("app")
def observe(url: str, cfg: HealthConfig, requests_count: int = OBSERVE_REQUESTS) -> Observation:
    """``requests_count`` fresh requests (a new connection each) to ``url + cfg.path``: the colour
    that answered them all healthily, or None and what was seen instead. What a stage says about
    live traffic comes from here, never from memory."""
    seen: dict[str, int] = {}
    for _ in range(requests_count):
        with requests.Session() as session:
            result = probe(session, url, cfg, None)
        key = result.colour if result.ok and result.colour in COLOURS else (
            result.detail.split(":")[0] if not result.ok else "an answer without X-Bgci-Color")
        seen[key] = seen.get(key, 0) + 1
    if len(seen) == 1:
        only = next(iter(seen))
        if only in COLOURS:
            return Observation(only, f"{requests_count}/{requests_count} requests through "
                                     f"{url} answered by {only}")
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
    return Observation(None, f"{requests_count} requests through {url}{cfg.path}: {summary}")
