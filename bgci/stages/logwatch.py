"""The new colour's output while it bakes: lines matching ``switch.log_errors`` counted per
minute, and a few of them, deduplicated, for the report."""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field

from bgci.model import Colour
from bgci.ports import Platform

SHOWN = 5  # distinct offending lines in the report
_TRACEBACK = "Traceback (most recent call last)"
# what differs between two reports of one error: timestamps, pids, ids, addresses, counts
_VARYING = re.compile(r"0x[0-9a-fA-F]+|[0-9a-f]{8,}|\d+")


@dataclass
class Offence:
    line: str  # the first one seen
    count: int = 1
    ended_in: str = ""  # a traceback: the exception it ended in (the first one seen whole)

    def __str__(self) -> str:
        return f"{self.line} ... {self.ended_in}" if self.ended_in else self.line


@dataclass
class LogWatch:
    """Reads ``colour``'s output from ``cursor`` on, each ``poll``; counts matching lines."""

    platform: Platform
    colour: Colour
    pattern: re.Pattern[str]
    cursor: str
    matched: int = 0
    times: deque[float] = field(default_factory=deque)  # when each match was seen
    offences: dict[str, Offence] = field(default_factory=dict)
    error: str = ""  # why the output could not be read (the watch then sees nothing)
    peak: int = 0  # the most matching lines seen within a minute
    _traceback: Offence | None = None  # a traceback whose exception line is still to come

    def poll(self) -> None:
        try:
            text, self.cursor = self.platform.output_after(self.colour, self.cursor)
        except Exception as exc:  # the output is a view of the colour, never a reason to fail
            self.error = f"{type(exc).__name__}: {exc}"
            return
        now = time.monotonic()
        for line in text.splitlines():
            self._line(line.rstrip(), now)
        self.peak = max(self.peak, self.per_minute())

    def _line(self, line: str, now: float) -> None:
        matches = bool(line) and self.pattern.search(line) is not None
        if self._traceback is not None and line and not line[:1].isspace():
            # the first unindented line after a traceback is the exception it ended in (unless
            # another worker's record came in between: then the next traceback tells)
            if not matches:
                self._traceback.ended_in = line.strip()[:200]
            self._traceback = None
        if not matches:
            return
        self.matched += 1
        self.times.append(now)
        key = _key(line)
        offence = self.offences.get(key)
        if offence is not None:
            offence.count += 1
        else:
            offence = self.offences[key] = Offence(line.strip()[:300])
        if _TRACEBACK in line and not offence.ended_in:
            self._traceback = offence

    def per_minute(self) -> int:
        """Matching lines seen in the last 60 seconds."""
        limit = time.monotonic() - 60
        while self.times and self.times[0] < limit:
            self.times.popleft()
        return len(self.times)

    def report(self) -> str:
        """The offending lines, most frequent first, each once with how often it was seen."""
        ranked = sorted(self.offences.values(), key=lambda o: -o.count)
        lines = [f"{o.count:>5} x {o}" for o in ranked[:SHOWN]]
        if len(ranked) > SHOWN:
            lines.append(f"      ... and {len(ranked) - SHOWN} other distinct line(s)")
        return "\n".join(lines)


def _key(line: str) -> str:
    """The line without what varies between two reports of one error: a traceback's exception
    decides, so all tracebacks start alike until it is seen."""
    return _VARYING.sub("#", line.strip())
