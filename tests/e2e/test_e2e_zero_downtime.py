"""Zero downtime, measured: keep-alive clients sending requests through the live address while
`switch` and `rollback` run lose no request and move from the old colour to the new one once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from e2e_support import Project, Request, RequestLoop, Run, Target, deploy_live

pytestmark = pytest.mark.e2e

AFTER = 1.0  # seconds the loop goes on after the stage ended
MIN_EACH_SIDE = 5  # requests per thread that must have been answered by each colour


def cut_over_under_load(p: Project, stage: str) -> tuple[Run, list[list[Request]], float, float]:
    """Run ``bgci STAGE`` while the request loop runs; return its records and the stage's times."""
    with RequestLoop(p.live_url, threads=3, hard_cap=60.0) as loop:
        loop.wait_for(MIN_EACH_SIDE)
        began = time.monotonic()
        run = p.run(stage)
        ended = time.monotonic()
        loop.stop_after(AFTER)
    return run, loop.records, began, ended


def assert_clean_cut_over(records: list[list[Request]], began: float, ended: float,
                          old: tuple[str, str], new: tuple[str, str]) -> None:
    """No request lost; per thread old* then new*, exactly one transition; versions match colours."""
    colour_version = dict([old, new])
    for n, sent in enumerate(records):
        bad = [r for r in sent if r.error or r.status is None or not 200 <= r.status < 300]
        assert not bad, f"thread {n}: {len(bad)} of {len(sent)} requests failed, e.g. {bad[:3]}"
        wrong = [r for r in sent if r.version and colour_version.get(r.colour or "") != r.version]
        assert not wrong, f"thread {n}: version does not match the colour: {wrong[:3]}"
        sequence = [colour for colour, _ in itertools.groupby(r.colour for r in sent)]
        assert sequence == [old[0], new[0]], (
            f"thread {n}: colours went {' -> '.join(map(str, sequence))}; expected exactly one "
            f"{old[0]} -> {new[0]} transition")
        assert all(r.colour == old[0] for r in sent if r.finished < began), f"thread {n}"
        after = [r for r in sent if r.started > ended]
        assert len(after) >= MIN_EACH_SIDE and all(r.colour == new[0] for r in after), (
            f"thread {n}: {len(after)} requests after the stage, colours "
            f"{sorted({str(r.colour) for r in after})}")
        assert sent[-1].colour == new[0]
        kinds = {r.kind for r in sent}
        assert kinds == {"GET /", "POST /echo"}, kinds


@pytest.mark.e2e
def test_switch_and_rollback_lose_no_request(target: Target,
                                              new_project: Callable[..., Project]) -> None:
    p = new_project()
    deploy_live(p, "v1")
    p.run("deploy-green", "--image", target.release("v2"))
    p.run("verify")
    blue, green = ("blue", target.version("v1")), ("green", target.version("v2"))

    run, records, began, ended = cut_over_under_load(p, "switch")
    assert_clean_cut_over(records, began, ended, old=blue, new=green)
    assert p.result("switch")["live_colour"] == "green", run

    run, records, began, ended = cut_over_under_load(p, "rollback")
    assert_clean_cut_over(records, began, ended, old=green, new=blue)
    assert p.result("rollback")["live_colour"] == "blue", run
