"""nginx's access log as request counters: open-source nginx keeps no count of answers by status
and upstream, so bgci's site writes one JSON line per request (``nginx_conf.access_log_formats``)
and bgci counts them, reading only what was added since its last look.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from bgci.metrics import add, cumulative
from bgci.model import COLOURS, Colour
from bgci.ports import Counters, Traffic

# the log bgci's managed nginx writes; emptied when bgci finds it bigger than this (nginx appends
# with O_APPEND, so it goes on writing at the new end)
LIMIT = 64 * 1024 * 1024
CHUNK = 4 * 1024 * 1024  # the most read in one look: a busy minute
# (size of the file, bytes from the offset asked for); None: the log cannot be read
Reader = Callable[[int], "tuple[int, bytes] | None"]


def parse_lines(data: bytes) -> dict[Colour, tuple[int, int, list[float]]]:
    """Complete JSON lines of the log: per colour (requests, 5xx answers, their seconds)."""
    found: dict[Colour, tuple[int, int, list[float]]] = {}
    for raw in data.splitlines():
        try:
            entry = json.loads(raw)
            colour, status, seconds = entry["c"], int(entry["s"]), float(entry["d"])
        except (ValueError, KeyError, TypeError):
            continue  # a line of another format (an older site file): not counted
        if colour not in COLOURS:
            continue
        requests, errors, durations = found.get(colour, (0, 0, []))
        durations.append(seconds)
        found[colour] = (requests + 1, errors + (500 <= status <= 599), durations)
    return found


class AccessLog:
    """The counts of one access log since bgci first looked at it (from then on, not before)."""

    def __init__(self, read: Reader, empty: Callable[[], None]) -> None:
        self.read = read
        self.empty = empty
        self.offset: int | None = None
        self.totals: dict[Colour, Traffic] = {}

    def counters(self) -> Counters | None:
        if self.offset is None:
            first = self.read(0)
            if first is None:
                return None
            size = first[0]
            if size > LIMIT:
                self.empty()
                size = 0
            self.offset = size
            return Counters(time.time(), {}, "nginx's access log")
        got = self.read(self.offset)
        if got is None:
            return None
        size, data = got
        if size < self.offset:  # emptied or replaced since: read it from its start
            self.offset = 0
            got = self.read(0)
            if got is None:
                return None
            size, data = got
        complete = data[: data.rfind(b"\n") + 1]  # a line being written waits for the next look
        self.offset += len(complete)
        for colour, (requests, errors, durations) in parse_lines(complete).items():
            self.totals[colour] = add(self.totals.get(colour, Traffic()),
                                      Traffic(requests, errors, cumulative(durations)))
        return Counters(time.time(), dict(self.totals), "nginx's access log")
