"""The output layer: levels, colour only on a terminal and never with NO_COLOR, the heartbeat of
a long wait, group timings."""

from __future__ import annotations

import io
import time

import pytest

from bgci import log as log_module
from bgci.log import StderrLog, use_colour


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert use_colour(Tty(), {}) is True
    assert use_colour(Tty(), {"NO_COLOR": "1"}) is False
    assert use_colour(io.StringIO(), {}) is False


def test_a_warning_is_coloured_on_a_terminal_and_annotated(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[str, str]] = []
    StderrLog(colour=True, annotate=lambda level, text: seen.append((level, text))).warning("x")
    err = capsys.readouterr().err
    assert "\x1b[33mwarning: x\x1b[0m" in err and seen == [("warning", "x")]
    StderrLog(colour=False).warning("y")
    assert "\x1b[" not in capsys.readouterr().err


def test_a_wait_beats_every_few_seconds_with_the_last_answer(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clock = [1000.0]
    monkeypatch.setattr(log_module.time, "monotonic", lambda: clock[0])
    log = StderrLog(colour=False)
    with log.waiting("health green") as progress:
        for second in range(0, 41):
            clock[0] = 1000.0 + second
            progress.update(f"HTTP 503 at {second}s")
    lines = [line for line in capsys.readouterr().err.splitlines() if "still waiting" in line]
    assert len(lines) == 5, lines  # at 5, 13, 21, 29, 37 s: never 10 s without one
    assert "still waiting for health green (5s): HTTP 503 at 5s" in lines[0]


def test_a_slow_group_says_how_long_it_took(capsys: pytest.CaptureFixture[str]) -> None:
    log = StderrLog(colour=False)
    with log.group("build"):
        time.sleep(log_module.SLOW_GROUP + 0.05)
    assert "== build" in capsys.readouterr().err
