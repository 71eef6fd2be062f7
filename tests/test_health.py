"""Health probes against a real local HTTP server."""

from __future__ import annotations

import time

import requests

from bgci.config import HealthConfig
from bgci.health import p95, wait_healthy
from bgci.log import StderrLog
from tests.helpers.httpserver import Script, serve

FAST = dict(interval=0.05, timeout=1.0)


def test_healthy_after_consecutive_successes() -> None:
    script = Script(body="status: ok", headers={"X-Bgci-Color": "green"})
    cfg = HealthConfig(successes=3, contains="ok", host="shop.example", deadline=5, **FAST)
    with serve(script) as url:
        check = wait_healthy(url, cfg, StderrLog(-1), name="health green", colour="green")
    assert check.outcome == "passed", check.message
    assert "3 consecutive successes" in check.message
    assert script.seen_hosts[:3] == ["shop.example"] * 3  # Host header sent (Django ALLOWED_HOSTS)


def test_wrong_status_fails_at_the_deadline_with_the_reason() -> None:
    script = Script(status=503, body="warming up")
    cfg = HealthConfig(deadline=0.4, **FAST)
    started = time.monotonic()
    with serve(script) as url:
        check = wait_healthy(url, cfg, StderrLog(-1), name="h")
    assert check.outcome == "failed"
    assert "HTTP 503, expected 200" in check.message and "warming up" in check.message
    assert 0.4 <= time.monotonic() - started < 3


def test_body_substring_and_colour_must_match() -> None:
    with serve(Script(body="degraded", headers={"X-Bgci-Color": "blue"})) as url:
        body = wait_healthy(url, HealthConfig(contains="ok", deadline=0.2, **FAST), StderrLog(-1),
                            name="h")
        colour = wait_healthy(url, HealthConfig(deadline=0.2, **FAST), StderrLog(-1), name="h",
                              colour="green")
    assert "does not contain 'ok'" in body.message
    assert "answered by blue, expected green" in colour.message


def test_connection_refused_is_a_failure_not_an_exception() -> None:
    check = wait_healthy("http://127.0.0.1:9", HealthConfig(deadline=0.2, **FAST), StderrLog(-1),
                         name="h")
    assert check.outcome == "failed" and "ConnectionError" in check.message


def test_a_failure_resets_the_streak() -> None:
    script = Script(statuses=[200, 200, 500])  # two successes, a failure, then healthy for good
    cfg = HealthConfig(successes=3, deadline=5, **FAST)
    with serve(script) as url:
        check = wait_healthy(url, cfg, StderrLog(-1), name="h")
    assert check.outcome == "passed"
    assert "FAIL" in check.output  # the failure is in the transcript
    # 2 ok, the failure, then 3 in a row: a run of the same answer is one line with its count
    lines = check.output.strip().splitlines()
    assert len(lines) == 3 and "(x2," in lines[0] and "FAIL" in lines[1] and "(x3," in lines[2]


def test_a_router_that_settles_needs_health_in_a_row_for_that_long() -> None:
    """A router that finds a colour by DNS may take it out again a moment after the first
    successes (an answer about the container it replaced): the streak must last ``steady``."""
    script = Script(statuses=[200, 200, 200, 503])  # healthy, out for one answer, then for good
    cfg = HealthConfig(successes=2, deadline=5, **FAST)
    started = time.monotonic()
    with serve(script) as url:
        check = wait_healthy(url, cfg, StderrLog(-1), name="h", steady=0.5)
    took = time.monotonic() - started
    assert check.outcome == "passed", check.message
    assert "FAIL" in check.output, "without steady it would have passed before the 503"
    assert took >= 0.5 + 3 * FAST["interval"], took  # a whole steady streak after the failure


def test_a_settled_colour_gets_one_fresh_probe_set_and_a_failure_brings_back_the_interval(
        ) -> None:
    # a colour an earlier stage saw healthy: 3 probes back to back, not 3 intervals of 0.5 s
    cfg = HealthConfig(successes=3, deadline=10, interval=0.5, timeout=1.0)
    with serve(Script()) as url:
        started = time.monotonic()
        check = wait_healthy(url, cfg, StderrLog(-1), name="h", settled=True)
        settled = time.monotonic() - started
        started = time.monotonic()
        wait_healthy(url, cfg, StderrLog(-1), name="h")
        starting = time.monotonic() - started
    assert check.outcome == "passed" and "3 consecutive successes" in check.message
    assert settled < starting / 2, (settled, starting)  # ~0.1 s against ~1.0 s
    # not what the earlier stage saw (a failure): the streak is waited for at cfg.interval again
    with serve(Script(statuses=[500])) as url:
        started = time.monotonic()
        check = wait_healthy(url, cfg, StderrLog(-1), name="h", settled=True)
        elapsed = time.monotonic() - started
    assert check.outcome == "passed" and "FAIL" in check.output
    assert elapsed >= 3 * cfg.interval, elapsed  # the failure, then 3 successes 0.5 s apart


def test_p95() -> None:
    assert p95([]) == 0.0
    assert p95([5.0]) == 5.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0


def test_an_answer_without_header_is_the_colour_at_the_address_a_dns_name_resolved_to() -> None:
    from bgci.health import observe, probe
    from bgci.ports import Reach

    script = Script(body="ok")  # an app that adds no X-Bgci-Color: DNS puts no router in front
    cfg = HealthConfig(**FAST)
    with serve(script) as url:
        def at_green(name_url: str) -> Reach:
            return Reach(url, host="www.example.test:8000", colour="green")

        seen = observe("http://www.example.test:8000", cfg, reach=at_green)
        assert (seen.colour, seen.ok) == ("green", True), seen.detail
        assert script.seen_hosts[-1] == "www.example.test:8000"  # the name, as a client sends it
        assert observe(url, cfg).colour is None  # a router in the path must name the colour
        with requests.Session() as session:
            nowhere = probe(session, "http://www.example.test:8000", cfg, "green",
                            lambda u: Reach(u, problem="www.example.test has no A record"))
        assert not nowhere.ok and nowhere.detail == "www.example.test has no A record"
    with serve(Script(body="ok", headers={"X-Bgci-Color": "blue"})) as url:
        with requests.Session() as session:
            wrong = probe(session, "http://www.example.test:8000", cfg, None,
                          lambda u: Reach(url, colour="green"))
        assert not wrong.ok and "X-Bgci-Color: blue at green's address" in wrong.detail
