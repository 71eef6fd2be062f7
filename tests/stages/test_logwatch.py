"""The new colour's output as the log watch reads it: matching lines counted per minute, each
distinct one shown once with its count, a traceback with the exception it ended in."""

from __future__ import annotations

import re

from bgci.settings import LOG_ERRORS
from bgci.stages.logwatch import LogWatch


class Output:
    """A platform whose colour writes ``chunks``, one per look."""

    def __init__(self, *chunks: str) -> None:
        self.chunks = list(chunks)

    def output_after(self, colour: str, cursor: str) -> tuple[str, str]:
        return (self.chunks.pop(0) if self.chunks else ""), "next"


FLASK = """[2026-01-02 03:04:05,123] ERROR in app: request /pay/17 failed inside
Traceback (most recent call last):
  File "/app/app.py", line 30, in pay
    raise RuntimeError("card 4242 declined")
RuntimeError: card 4242 declined
[2026-01-02 03:04:05,456] INFO in app: fine
"""


def test_tracebacks_and_error_records_are_counted_and_shown_once_each() -> None:
    watch = LogWatch(Output(FLASK, FLASK.replace("17", "18"), "[2026] [7] [ERROR] Worker timeout\n"),
                     "green", re.compile(LOG_ERRORS), "")  # type: ignore[arg-type]
    for _ in range(3):
        watch.poll()
    assert watch.matched == 5 and watch.peak == 5
    shown = watch.report().splitlines()
    assert shown[0].startswith("    2 x ") and len(shown) == 3, shown
    assert any("Traceback (most recent call last): ... RuntimeError: card 4242 declined" in line
               for line in shown), shown
    assert any("[ERROR] Worker timeout" in line for line in shown)
    assert not any("INFO" in line for line in shown)


def test_an_unreadable_output_is_said_not_hidden() -> None:
    class Broken:
        def output_after(self, colour: str, cursor: str) -> tuple[str, str]:
            raise OSError("no such container")

    watch = LogWatch(Broken(), "green", re.compile(LOG_ERRORS), "")  # type: ignore[arg-type]
    watch.poll()
    assert watch.matched == 0 and "no such container" in watch.error
