"""The bake over fakes (tests/fakes.py): real requests as the router counts them, bgci's probes
as the floor, the log watch, the latency checks and the timeline a switch leaves. A load thread
sends requests through the fake router's live address while the switch runs, as users would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from bgci.errors import BgciError
from bgci.metrics import cumulative
from bgci.model import StageResult
from bgci.ports import Traffic
from bgci.stages.bake import _latency
from bgci.stages.deploy_green import deploy_green
from bgci.stages.rollback import rollback
from bgci.stages.switch import switch
from bgci.stages.verify import verify
from tests.fakes import World, fake_deployment

BAKE = {"switch": {"bake": 1.0, "max_error_rate": 0.05}, "health": {"interval": 0.02}}


class Load:
    """Requests back to back through ``url`` for each of ``paths`` in turn, no retries: what a
    user saw, and when (``time.time()`` at each answer)."""

    def __init__(self, url: str, paths: tuple[str, ...]) -> None:
        self.url, self.paths = url, paths
        self.answers: list[tuple[float, str | None, int]] = []  # (at, colour, status)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            i = 0
            while not self._stop.is_set():
                path = self.paths[i % len(self.paths)]
                response = session.get(self.url + path, timeout=5)
                self.answers.append((time.time(), response.headers.get("X-Bgci-Color"),
                                     response.status_code))
                i += 1
                time.sleep(0.002)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World()
    for image in ("v1", "v2"):
        w.add_image(image)
    for stage, body in (("deploy-green", lambda d, r: deploy_green(d, r, "v1")),
                        ("verify", verify), ("switch", switch),
                        ("deploy-green", lambda d, r: deploy_green(d, r, "v2")),
                        ("verify", verify)):
        with fake_deployment(tmp_path, w) as d:
            body(d, StageResult(stage=stage, app="shop"))
    return w


@contextmanager
def switched(tmp_path: Path, world: World, paths: tuple[str, ...] | None,
             settings: dict[str, dict[str, Any]] | None = None
             ) -> Iterator[tuple[int, StageResult, Load | None]]:
    """``bgci switch`` (blue -> green) with ``paths`` requested throughout (None: no load)."""
    result = StageResult(stage="switch", app="shop")
    merged = {name: dict(values) for name, values in BAKE.items()}
    for name, values in (settings or {}).items():
        merged.setdefault(name, {}).update(values)
    with fake_deployment(tmp_path, world, merged) as d:
        load = Load(d.router.live_url, paths) if paths else None
        code = 0
        try:
            if load is not None:
                load.__enter__()
                while len(load.answers) < 20:  # users were there before the switch
                    time.sleep(0.01)
            switch(d, result)
        except BgciError as exc:
            code, result.message = exc.exit_code, str(exc)
        finally:
            if load is not None:
                load.__exit__()
        yield code, result, load


def checks(result: StageResult) -> dict[str, Any]:
    return {check.name: check for check in result.checks}


def test_real_requests_failing_where_the_probe_never_looks_roll_back(tmp_path: Path,
                                                                     world: World) -> None:
    world.fails_path[world.images["v2"]] = ("/pay", 2)  # every 2nd /pay: a quarter of requests
    with switched(tmp_path, world, ("/", "/pay")) as (code, result, _):
        pass
    assert code == 1, result.message
    assert "bake of green failed and live traffic was rolled back to blue" in result.message
    bake = checks(result)["bake green"]
    assert bake.outcome == "failed" and "real requests to green answered 5xx" in bake.message
    figures = result.extra["bake"]
    assert figures["requests"] >= 20 and 0.15 < figures["error_rate"] < 0.35, figures
    assert figures["probe_failures"] == 0, "the probe alone would have passed it"
    assert world.live == "blue" and world.images["v2"] in (world.state or {})["quarantined"]


def test_the_same_release_without_those_requests_stays_live(tmp_path: Path, world: World) -> None:
    world.fails_path[world.images["v2"]] = ("/pay", 2)
    with switched(tmp_path, world, ("/", "/about")) as (code, result, _):
        pass
    assert code == 0, result.message
    bake = checks(result)["bake green"]
    assert bake.outcome == "passed" and "0/" in bake.message, bake.message
    assert world.live == "green"


def test_without_real_traffic_the_probes_decide(tmp_path: Path, world: World) -> None:
    world.counting = False
    world.fails_after[world.images["v2"]] = 8  # health answers fail after a while, live
    with switched(tmp_path, world, None) as (code, result, _):
        pass
    assert code == 1, result.message
    bake = checks(result)["bake green"]
    assert "the router gave no counters, so the probes decide" in bake.message, bake.message
    assert world.live == "blue"


def test_a_release_logging_tracebacks_is_rolled_back_by_the_log_watch(tmp_path: Path,
                                                                     world: World) -> None:
    world.logs_per_request[world.images["v2"]] = "Traceback (most recent call last):"
    with switched(tmp_path, world, ("/",), {"switch": {"max_log_errors": 5}}) as (code, result, _):
        pass
    assert code == 1, result.message
    logs = checks(result)["bake green logs"]
    assert logs.outcome == "failed" and "switch.max_log_errors = 5" in logs.message
    assert "x Traceback (most recent call last):" in logs.output, "the line, once, with a count"
    assert logs.output.count("Traceback") == 1, logs.output
    assert world.live == "blue"


def test_log_lines_are_reported_but_do_not_roll_back_by_default(tmp_path: Path,
                                                                world: World) -> None:
    world.logs_per_request[world.images["v2"]] = "[ERROR] something went wrong"
    with switched(tmp_path, world, ("/",)) as (code, result, _):
        pass
    assert code == 0, result.message
    logs = checks(result)["bake green logs"]
    assert logs.outcome == "passed" and "report only" in logs.message
    assert "[ERROR] something went wrong" in logs.output


def test_the_timeline_counts_what_the_users_sent(tmp_path: Path, world: World) -> None:
    with switched(tmp_path, world, ("/",)) as (code, result, load):
        pass
    assert code == 0 and load is not None, result.message
    timeline = result.extra["timeline"]
    marks = [m["name"] for m in timeline["marks"]]
    assert marks[:3] == ["decision", "cut-over", "confirmed"], marks
    assert [w["name"] for w in timeline["windows"]] == ["drain", "bake"]
    t0, step = timeline["t0"], timeline["step"]
    end = t0 + step * len(timeline["series"]["blue"]["requests"])
    for colour in ("blue", "green"):
        drawn = sum(timeline["series"][colour]["requests"])
        sent = sum(1 for at, c, _ in load.answers if c == colour and t0 < at <= end)
        # the router also counted bgci's own requests (probes, confirmation): never fewer but
        # for the one a user had in flight at either end of the timeline
        assert drawn >= sent * 0.95 - 1, (colour, drawn, sent)
    # users reached green inside the timeline (how many depends on the machine's load: the
    # 1 s bake alone sees hundreds on a quiet one, a few dozen on a busy one)
    assert sum(1 for at, c, _ in load.answers if c == "green" and t0 < at <= end) >= 5


def test_latency_is_judged_against_a_budget_and_the_old_colour(tmp_path: Path,
                                                              world: World) -> None:
    def traffic(*seconds: float) -> Traffic:
        return Traffic(requests=len(seconds), buckets=cumulative(seconds))

    old = traffic(*[0.02] * 100)
    slow = traffic(*[0.02] * 50, *[0.4] * 50)
    settings = {"switch": {"max_p95_ms": 1000, "max_p95_increase": 0.5}}
    with fake_deployment(tmp_path, world, settings) as d:
        check, figures = _latency(d, "green", "blue", slow, old, _no_probes(), 5.0)
        assert check is not None and check.outcome == "failed", check
        assert "blue's 24 ms +50%" in check.message and figures["p95_ms"] > 300, figures
        check, _ = _latency(d, "green", "blue", old, old, _no_probes(), 5.0)
        assert check is not None and check.outcome == "passed", check


def _no_probes() -> Any:
    from bgci.stages.bake import Probes

    return Probes()


def test_a_rollback_leaves_its_own_timeline(tmp_path: Path, world: World) -> None:
    with switched(tmp_path, world, ("/",), {"switch": {"bake": 0.0}}) as (code, _, _):
        assert code == 0
    result = StageResult(stage="rollback", app="shop")
    with fake_deployment(tmp_path, world) as d, Load(d.router.live_url, ("/",)) as load:
        while len(load.answers) < 10:
            time.sleep(0.01)
        rollback(d, result)
    timeline = result.extra["timeline"]
    assert [m["name"] for m in timeline["marks"]] == ["rollback", "rolled back"]
    assert sum(timeline["series"]["blue"]["requests"]) > 0 and world.live == "blue"
