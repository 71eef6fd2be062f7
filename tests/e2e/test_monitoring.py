"""Monitoring during and after the switch, end to end (docs/monitoring.md): releases that pass
health checks and the smoke suite but fail what real users do, under a real no-retry load that
bgci does not generate, judged by the bake from the router's own counters (HAProxy on docker,
Traefik on the process platform), by a real Prometheus scraping the router, and by the new
colour's own output; each switch leaves a timeline SVG that matches the load's own counts, and
report.html renders in headless Chromium with the timeline and the stage table.

The faulty releases are the example app with a fault file (examples/flask-app/app.py):
``FAIL_POSTS`` fails every fourth POST of a worker, ``LOG_TRACEBACKS`` logs a traceback on every
request. Several scenarios share one app per platform, in order, to keep the wall time small.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    Project,
    Request,
    RequestLoop,
    Target,
    deploy_live,
    junit_cases,
    make_project,
)

from tests.helpers.png import near, read_png, rows_with
from tests.helpers.prometheus import prometheus

pytestmark = pytest.mark.e2e

SVG = "{http://www.w3.org/2000/svg}"
# health every 0.5 s: bgci's own probes stay a small part of what the router counts
SETTINGS = {"health.interval": 0.5, "health.successes": 2, "switch.drain": 1,
            "switch.confirm_requests": 10}
BAKE = ("--set", "switch.bake=6", "--set", "switch.max_error_rate=0.05")
POSTS = ("GET /", "POST /echo")
GETS = ("GET /",)
# the new colour's share of 5xx answers, from Traefik's metrics as Prometheus scraped them
ERROR_RATIO = ('(sum(rate(traefik_service_requests_total{service="{{app}}-{{colour}}@file",'
               'code=~"5.."}[4s])) or vector(0)) / sum(rate(traefik_service_requests_total'
               '{service="{{app}}-{{colour}}@file"}[4s]))')


# -- releases with a fault ----------------------------------------------------------------------
@contextlib.contextmanager
def faulty_releases(target: Target, root: Path) -> Iterator[Any]:
    """``make(base, fault)``: a release of ``base``'s code with the fault file ``fault`` in its
    app directory and a digest never seen; what it made is removed afterwards."""
    made: list[str] = []

    def make(base: str, fault: str) -> str:
        name = f"{fault.lower().replace('_', '-')}-{len(made) + 1}-{root.name[-8:]}"
        if target.kind == "process":  # the base's sources and venv, the fault file, a new id
            source = Path(target.release(base))
            where = root / name
            shutil.copytree(source / "app", where / "app", symlinks=True)
            (where / "venv").symlink_to(source / "venv")
            (where / "app" / fault).write_text("on\n", encoding="utf-8")
            info = json.loads((source / "release.json").read_text(encoding="utf-8"))
            info.update(id=name, digest="sha256:" + hashlib.sha256(name.encode()).hexdigest())
            (where / "release.json").write_text(json.dumps(info), encoding="utf-8")
            made.append(str(where))
            return str(where)
        client: Any = target.client  # type: ignore[attr-defined]
        ref = f"bgci-e2e-monitoring/{name}:latest"
        dockerfile = (f"FROM {target.release(base)}\nUSER root\nRUN echo on > /app/{fault}\n"
                      "USER app\n")
        made.append(ref)
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True)
        return ref

    try:
        yield make
    finally:
        for thing in made:
            if target.kind == "process":
                shutil.rmtree(thing, ignore_errors=True)
            else:
                with contextlib.suppress(Exception):
                    target.client.images.remove(thing, force=True)  # type: ignore[attr-defined]


# -- what a test reads back -----------------------------------------------------------------
def switch_under(p: Project, kinds: tuple[str, ...], *args: str, expect: int) -> list[Request]:
    """``bgci switch`` with ``args`` while a 3-thread no-retry load of ``kinds`` runs; the load's
    own record of every request."""
    with RequestLoop(p.live_url, threads=3, kinds=kinds, hard_cap=120) as loop:
        loop.wait_for(10)  # users were there before the switch
        p.run(*args, "switch", expect=expect)
    return [r for records in loop.records for r in records]


def timeline_counts(p: Project, stage: str = "switch"
                    ) -> tuple[float, float, dict[str, list[float]]]:
    """The timeline SVG a stage left: (start, end) in epoch seconds, requests drawn per colour
    per step."""
    root = ET.parse(p.reports / f"{stage}-timeline.svg").getroot()
    lines = [e for e in root.iter(f"{SVG}polyline") if e.get("class") == "series"]
    assert {e.get("data-colour") for e in lines} == {"blue", "green"}, "a line per colour"
    counts = {str(e.get("data-colour")): [float(v) for v in str(e.get("data-counts")).split()]
              for e in lines}
    t0, step = float(str(lines[0].get("data-t0"))), float(str(lines[0].get("data-step")))
    return t0, t0 + step * len(counts["blue"]), counts


def own_requests(p: Project, stage: str = "switch") -> int:
    """bgci's own requests through the router during ``stage``, as its report lists them: the
    health probes (a transcript line per answer, "(xN, ...)" for N alike in a row), the
    confirmations ("20/20 new requests ...") and the bake's probes."""
    result = p.result(stage)
    own = int((result.get("extra", {}).get("bake") or {}).get("probes", 0))
    for check in result["checks"]:
        if check["name"].startswith("health"):
            for line in str(check.get("output", "")).splitlines():
                repeated = re.search(r"\(x(\d+),", line)
                own += int(repeated.group(1)) if repeated else 1
        confirmed = re.match(r"(\d+)/\d+ new requests", str(check.get("message", "")))
        own += int(confirmed.group(1)) if confirmed else 0
    return own


def assert_timeline_matches(p: Project, load: list[Request], stage: str = "switch") -> None:
    """Requests per colour in the timeline are the load's own counts, within 5%, plus what bgci
    itself sent through the router (its health probes, confirmations and bake probes)."""
    start, end, drawn = timeline_counts(p, stage)
    own = own_requests(p, stage)
    for colour, steps in drawn.items():
        count, sent = sum(steps), sum(1 for r in load if r.colour == colour and start < r.at <= end)
        # a reading is stamped when the router answered: at either end of the timeline up to a
        # step's worth of requests falls on the other side of the line the load's clock draws
        edge = 2 * max(steps)
        assert sent > 0 and sent * 0.95 - 2 - edge <= count <= sent * 1.05 + 2 + own + edge, (
            f"{colour}: the timeline draws {count:.0f} requests, the load sent {sent} "
            f"(bgci itself: {own}; a step at each end: {edge:.0f})")


def error_rate_seen(load: list[Request], colour: str, since: float) -> tuple[int, int]:
    """(5xx answers, requests) of the load answered by ``colour`` after ``since``."""
    mine = [r for r in load if r.colour == colour and r.at > since]
    return sum(1 for r in mine if r.status is not None and r.status >= 500), len(mine)


def bake_figures(p: Project) -> dict[str, Any]:
    figures: dict[str, Any] = p.result("switch")["extra"]["bake"]
    return figures


def moment(p: Project, name: str) -> float:
    timeline = p.result("switch")["extra"]["timeline"]
    return float(timeline["t0"]) + next(m["t"] for m in timeline["marks"] if m["name"] == name)


def assert_rolled_back_by(p: Project, case: str, live: str) -> ET.Element:
    """The switch failed on ``case``, rolled back to ``live``: the failure as JUnit shows it."""
    cases = junit_cases(p.junit("switch"))
    failure = cases[case].find("failure")
    assert failure is not None, f"{case} did not fail: {list(cases)}"
    assert f"rolled back to {live}" in p.result("switch")["message"]
    p.assert_serves(live, p.target.version("v1" if live == "blue" else "v2"))
    return failure


# -- the process platform: Traefik, Prometheus, the log watch, report.html ----------------------
def failing_posts_rolled_back(p: Project, faulty: Any, source: str
                              ) -> tuple[ET.Element, dict[str, Any]]:
    """v1 live, then v2 whose POSTs fail a quarter of the time (health and smoke pass) switched
    to under load: the bake rolls it back on the router's own counters (``source``), with the
    error rate the clients saw. The failed bake's test case and its figures."""
    deploy_live(p, "v1")
    p.run("deploy-green", "--image", faulty("v2", "FAIL_POSTS"))
    p.run("verify")
    load = switch_under(p, POSTS, *BAKE, expect=1)
    failure = assert_rolled_back_by(p, "bake green", "blue")
    figures = bake_figures(p)
    errors, answered = error_rate_seen(load, "green", moment(p, "confirmed"))
    assert figures["source"] == source and figures["probe_failures"] == 0, figures
    assert 0.06 < figures["error_rate"] < 0.2, figures  # half the requests are POSTs
    assert abs(figures["error_rate"] - errors / answered) < 0.04, (figures, errors, answered)
    assert_timeline_matches(p, load)
    return failure, figures


@pytest.mark.process
def test_process_bake_judges_real_traffic_prometheus_and_logs(
        process_target: Target, tmp_path: Path, junit_schema: Any) -> None:
    p = make_project(tmp_path / "project", process_target, SETTINGS, schema=junit_schema)
    with faulty_releases(process_target, tmp_path / "releases") as faulty:
        failure, figures = failing_posts_rolled_back(p, faulty, "Traefik's metrics")
        # the message's rate, from the counts (the JSON's error_rate is rounded to 4 places first)
        assert f"error rate {figures['errors'] / figures['requests']:.3f}" in failure.get("message", "")

        port = json.loads((process_target.state_dir / p.app / "router" / "bgci-traefik"  # type: ignore[attr-defined]
                           / "traefik.yml").read_text())["entryPoints"]["traefik"]["address"]
        with prometheus(tmp_path / "prometheus", [port]) as url:
            analysis = ("[{name='errors', prometheus='" + url + "', query='" + ERROR_RATIO
                        + "', interval=2.5, count=2, max=0.05}]")
            # the same code without the POSTs, every watch on: no false alarm
            p.run("deploy-green", "--image", faulty("v2", "FAIL_POSTS"))
            p.run("verify")
            load = switch_under(p, GETS, *BAKE, "--set", f"analysis={analysis}",
                                "--set", "switch.max_log_errors=0", expect=0)
            p.assert_serves("green", p.target.version("v2"))
            cases = junit_cases(p.junit("switch"))
            assert {name: cases[name].find("failure") for name in
                    ("bake green", "analysis errors", "bake green logs")} == dict.fromkeys(
                ("bake green", "analysis errors", "bake green logs")), "all passed"
            assert "2 measurements every 2.5s, each <= 0.05: 0, 0" in str(
                cases["analysis errors"].findtext("system-out")), ET.tostring(cases["analysis errors"])
            assert_timeline_matches(p, load)
            # the POSTs again, judged by Prometheus alone (the counters' limit off): rolled back
            p.run("deploy-green", "--image", faulty("v2", "FAIL_POSTS"))
            p.run("verify")
            switch_under(p, POSTS, "--set", "switch.bake=6", "--set", "switch.max_error_rate=1",
                         "--set", f"analysis={analysis}", expect=1)
        failure = assert_rolled_back_by(p, "analysis errors", "green")
        assert "> max 0.05" in failure.get("message", ""), failure.attrib

        # a release that logs a traceback on every request: rolled back by the log watch
        p.run("deploy-green", "--image", faulty("v2", "LOG_TRACEBACKS"))
        p.run("verify")
        switch_under(p, GETS, "--set", "switch.bake=6", "--set", "switch.max_log_errors=0",
                     expect=1)
        failure = assert_rolled_back_by(p, "bake blue logs", "green")
        shown = failure.text or ""
        assert "Traceback (most recent call last)" in shown and "RuntimeError: a fault made on " \
            "purpose (LOG_TRACEBACKS)" in shown, shown
        assert len(shown.splitlines()) <= 6, "a few lines, deduplicated"
        p.assert_junit_valid()
        see_report_in_chromium(p, tmp_path / "report.png")


def see_report_in_chromium(p: Project, shot: Path) -> None:
    """report.html as a person sees it: the stage table, then the timeline with both colours."""
    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium is missing: run `bash scripts/test-env.sh` as root"
    page = p.reports / "report.html"
    run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--hide-scrollbars", "--window-size=1100,1000",
                          f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    rows = read_png(shot)
    header = rows_with(rows, "#f6f8fa", 2)  # the stage table's header row
    blue, green = rows_with(rows, "#1f6feb", 30), rows_with(rows, "#2da44e", 30)
    failed = [y for y in rows_with(rows, "#cf222e", 30) if header and y < min(blue or [0])]
    assert header, "no table in the screenshot"
    # the timeline: both colours' lines over a plot taller than 100 pixels, below the table
    drawn = [y for y in blue if y in set(green)]
    assert drawn and max(drawn) - min(drawn) > 100 and min(drawn) > header[0], (
        f"no timeline with both colours below the table (table at {header[:1]}, "
        f"rows with both colours {drawn[:3]}...)")
    assert failed, "the failed switch's red badge in the stage table"
    assert any(near(pixel, "#ffffff", 5) for pixel in rows[drawn[0]]), "drawn on the page"


# -- docker: HAProxy's show stat -----------------------------------------------------------
@pytest.mark.docker
def test_docker_bake_rolls_back_failing_posts_from_haproxys_counters(
        docker_target: Target, tmp_path: Path, junit_schema: Any) -> None:
    p = make_project(tmp_path / "project", docker_target, SETTINGS, schema=junit_schema)
    with faulty_releases(docker_target, tmp_path / "releases") as faulty:
        failure, _ = failing_posts_rolled_back(p, faulty, "HAProxy's show stat")
    assert "real requests to green answered 5xx" in failure.get("message", "")
    p.assert_junit_valid()
