"""HTTP health probes with requests: path, status, body substring, Host header, consecutive passes."""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from bgci.log import Log
from bgci.model import COLOURS, Check, Colour, Observation
from bgci.ports import Reach
from bgci.settings import HealthConfig
from bgci.timings import waits_on

COLOUR_HEADER = "X-Bgci-Color"
# a router's ``reach``: where a fresh client of a URL goes now (a DNS name resolved at its server)
Reacher = Callable[[str], Reach]


@dataclass
class Probe:
    ok: bool
    seconds: float
    detail: str
    colour: str = ""
    status: int = 0  # the HTTP status (0: no answer)


@dataclass
class ProbeSeries:
    """The probes one wait made; latencies feed the p95 budget."""

    probes: list[Probe] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [p.seconds * 1000 for p in self.probes if p.ok]


def probe(session: requests.Session, url: str, cfg: HealthConfig, colour: Colour | None,
          reach: Reacher | None = None) -> Probe:
    """One request to ``url + cfg.path`` (to where ``reach`` says a fresh client of ``url`` goes
    now, when given); ok when status, body and (if given) colour all match."""
    started = time.perf_counter()
    where = reach(url) if reach is not None else Reach(url)
    if where.problem:
        return Probe(False, time.perf_counter() - started, where.problem)
    host = cfg.host or where.host
    headers = {"Host": host} if host else {}
    try:
        response = session.get(where.url + cfg.path, headers=headers, timeout=cfg.timeout,
                               allow_redirects=False)
    except requests.RequestException as exc:
        return Probe(False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    said = response.headers.get(COLOUR_HEADER, "")
    seen = said or where.colour or ""
    code = response.status_code
    if where.colour and said and said != where.colour:
        return Probe(False, seconds, f"answered X-Bgci-Color: {said} at {where.colour}'s address "
                     f"{where.url}", said, code)
    if code != cfg.status:
        body = _gist(response.text)
        return Probe(False, seconds, f"HTTP {code}, expected {cfg.status}"
                     + (f": {body}" if body else ""), seen, code)
    if cfg.contains and cfg.contains not in response.text:
        return Probe(False, seconds, f"body does not contain {cfg.contains!r}", seen, code)
    if colour and seen and seen != colour:
        return Probe(False, seconds, f"answered by {seen}, expected {colour}", seen, code)
    return Probe(True, seconds, f"HTTP {code} in {seconds * 1000:.0f} ms", seen, code)


_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.DOTALL | re.IGNORECASE)


def _gist(body: str, limit: int = 120) -> str:
    """An error page in one short line: its text without markup (a framework's 404 page is
    kilobytes of HTML; its title and first words say what it is)."""
    text = " ".join(html.unescape(_TAGS.sub(" ", body[:20000])).split())
    return text[:limit] + ("..." if len(text) > limit else "")


class Transcript:
    """The probes of one wait as lines for the report: a run of identical answers is one line
    with its count, so a 60 s wait on a 404 page is two lines, not a hundred copies."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._last = ""
        self._count = 0
        self._since = 0.0

    def add(self, elapsed: float, result: Probe) -> None:
        # what changes from probe to probe (the time an answer took) is not a new answer
        detail = f"{'ok  ' if result.ok else 'FAIL'} " + (
            f"HTTP {result.status}" if result.ok else result.detail)
        if detail == self._last:
            self._count += 1
            self.lines[-1] = f"{self._since:6.1f}s {detail} (x{self._count}, last at {elapsed:.1f}s)"
            return
        self._last, self._count, self._since = detail, 1, elapsed
        self.lines.append(f"{elapsed:6.1f}s {detail}")

    def text(self, limit: int = 50) -> str:
        lines = self.lines if len(self.lines) <= limit else (
            [*self.lines[:5], "  ...", *self.lines[-(limit - 6):]])
        return "\n".join(lines)


# the same 4xx this many times in a row: the health request itself is wrong, not the app slow
EARLY_4XX = 3
WATCH_EVERY = 1.0  # seconds between two looks at whether the colour's process still runs
SETTLED_GAP = 0.05  # seconds between the probes of a colour an earlier stage saw healthy


def client_error_hint(status: int, cfg: HealthConfig) -> str:
    """What a health check that keeps getting ``status`` (a 4xx) means, naming the key to fix."""
    if status == 404:
        return (f"the app has no page at health.path = {cfg.path!r}: set health.path to the app's "
                "health endpoint (e.g. /healthz)")
    if status == 400:
        return ("the app refuses the request, typically its Host header (Django's ALLOWED_HOSTS): "
                f"set health.host to a host the app allows (now {cfg.host or 'unset'})")
    return (f"health.path = {cfg.path!r} must answer {cfg.status} to a plain GET without "
            "credentials")


def no_answer_hint(detail: str) -> str:
    """What waiting in vain behind a router means, when nothing of the app answers."""
    if "HTTP 502" in detail or "HTTP 503" in detail or "Connection" in detail:
        return ("the router gets no answer from the app: does it listen on the port bgci gives it "
                "(platform.port, $PORT, or {port} in platform.command)?")
    return ""


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
    watch: Callable[[], str] | None = None,
    reach: Reacher | None = None,
    settled: bool = False,
    steady: float = 0.0,
) -> Check:
    """Probe until ``cfg.successes`` in a row pass, over ``steady`` seconds at least (a router
    whose view of a colour just started settles that long: Router.settle_for), or ``deadline``
    (default cfg.deadline) passes.

    ``settled``: an earlier stage already waited for this colour to become healthy (it runs the
    release that stage started), so this is one fresh probe set: the probes follow each other
    SETTLED_GAP apart while they pass; after a failure they are ``cfg.interval`` apart, as for a
    colour that is starting.

    Fails early, saying why, when the answer cannot get better by waiting: ``watch`` (called about
    once a second) says the colour's process exited or restarts in a loop, or the same 4xx came
    back EARLY_4XX times in a row. A heartbeat line says what is being waited for every few
    seconds, with the last answer.
    """
    limit = cfg.deadline if deadline is None else deadline
    series = series if series is not None else ProbeSeries()
    started = time.monotonic()
    streak, last, same_4xx, watched = 0, "", 0, started
    streak_began = started
    transcript = Transcript()
    target = f"{url}{cfg.path}"
    with requests.Session() as session, log.waiting(f"{name} at {target}") as progress:
        while True:
            result = probe(session, url, cfg, colour, reach)
            series.probes.append(result)
            elapsed = time.monotonic() - started
            transcript.add(elapsed, result)
            progress.update(result.detail)
            streak = streak + 1 if result.ok else 0
            if streak == 1:
                streak_began = time.monotonic()
            client_error = not result.ok and 400 <= result.status < 500
            same_4xx = (same_4xx + 1 if result.detail == last else 1) if client_error else 0
            if result.detail != last:
                log.debug(f"health {target}: {result.detail}")
                last = result.detail
            if streak >= cfg.successes and time.monotonic() - streak_began >= steady:
                return Check(name, "passed", elapsed,
                             f"{streak} consecutive successes at {target}", transcript.text())
            if same_4xx >= EARLY_4XX:
                return Check(name, "failed", elapsed,
                             f"{target} answers {result.detail} ({same_4xx} times in a row): "
                             f"{client_error_hint(result.status, cfg)}", transcript.text())
            if watch is not None and time.monotonic() - watched >= WATCH_EVERY:
                watched = time.monotonic()
                crashed = watch()
                if crashed:
                    return Check(name, "failed", elapsed, f"not healthy at {target}: {crashed}",
                                 transcript.text())
            if not result.ok:
                settled = False  # not what the earlier stage saw: wait as for a start
            if elapsed >= limit:
                hint = no_answer_hint(result.detail)
                return Check(
                    name, "failed", elapsed,
                    f"not healthy after {limit:.0f}s at {target}: {result.detail}"
                    + (f"; {hint}" if hint else ""), transcript.text(),
                )
            time.sleep(min(SETTLED_GAP, cfg.interval) if settled else cfg.interval)


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(round(0.95 * len(ordered), 9))  # nearest rank, 1-based; 0.95 * 100 > 95 in floats
    return ordered[max(rank, 1) - 1]


OBSERVE_REQUESTS = 3


@waits_on("app")
def observe(url: str, cfg: HealthConfig, requests_count: int = OBSERVE_REQUESTS,
            reach: Reacher | None = None) -> Observation:
    """``requests_count`` fresh requests (a new connection each) to ``url + cfg.path``: the colour
    that answered them all healthily, or None and what was seen instead. What a stage says about
    live traffic comes from here, never from memory."""
    seen: dict[str, int] = {}
    for _ in range(requests_count):
        with requests.Session() as session:
            result = probe(session, url, cfg, None, reach)
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
