"""The one way stages talk to a human: levelled lines on stderr, foldable groups with their timing,
a heartbeat while something is waited for, colour only on a terminal (never with ``NO_COLOR``),
and the CI's own annotations for warnings (the CI adapter decides how groups fold and what an
annotation looks like)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

HEARTBEAT_FIRST = 5.0  # seconds of waiting before the first "still waiting" line
HEARTBEAT_EVERY = 8.0  # ... and between two of them
SLOW_GROUP = 1.0  # a group that took longer says how long

_COLOURS = {"warning": "\x1b[33m", "error": "\x1b[31m", "group": "\x1b[1m"}
_RESET = "\x1b[0m"


class Progress(Protocol):
    def update(self, detail: str) -> None:
        """What the wait sees now (e.g. the last probe's answer), for the next heartbeat line."""


class Log(Protocol):
    def info(self, message: str) -> None: ...

    def debug(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def group(self, title: str) -> AbstractContextManager[None]: ...

    def waiting(self, what: str) -> AbstractContextManager[Progress]:
        """A wait for ``what``: a heartbeat line every few seconds while it lasts, with how long
        so far and the last ``update``."""


def use_colour(stream: object = sys.stderr, environ: Mapping[str, str] = os.environ) -> bool:
    """Colour on a terminal only, never with ``NO_COLOR`` set (https://no-color.org)."""
    if "NO_COLOR" in environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Heartbeat:
    def __init__(self, log: StderrLog, what: str) -> None:
        self.log, self.what = log, what
        self.started = time.monotonic()
        self.next = self.started + HEARTBEAT_FIRST
        self.detail = ""

    def update(self, detail: str) -> None:
        self.detail = detail
        now = time.monotonic()
        if now >= self.next:
            self.next = now + HEARTBEAT_EVERY
            tail = f": {self.detail}" if self.detail else ""
            self.log.info(f"still waiting for {self.what} ({now - self.started:.0f}s){tail}")


class StderrLog:
    """Plain log; ``fold`` wraps group titles in the CI's folding markers, ``annotate`` raises a
    warning to the CI's own annotations (GitHub's ``::warning``), ``redact`` masks secrets."""

    def __init__(
        self,
        verbosity: int = 0,
        fold: Callable[[str], AbstractContextManager[None]] | None = None,
        redact: Callable[[str], str] = str,
        *,
        colour: bool | None = None,
        annotate: Callable[[str, str], None] | None = None,
    ) -> None:
        self.verbosity = verbosity
        self._fold = fold
        self._redact = redact
        self._annotate = annotate
        self.colour = use_colour() if colour is None else colour
        self._t0 = time.monotonic()

    def _write(self, message: str, level: str = "") -> None:
        stamp = f"[{time.monotonic() - self._t0:6.1f}s]"
        start, end = (_COLOURS[level], _RESET) if self.colour and level in _COLOURS else ("", "")
        for line in self._redact(message).splitlines() or [""]:
            sys.stderr.write(f"bgci {stamp} {start}{line}{end}\n")
        sys.stderr.flush()

    def info(self, message: str) -> None:
        if self.verbosity >= 0:
            self._write(message)

    def debug(self, message: str) -> None:
        if self.verbosity > 0:
            self._write(message)

    def warning(self, message: str) -> None:
        """Always shown (even with -q); also an annotation where the CI has them."""
        self._write(f"warning: {message}", "warning")
        if self._annotate is not None:
            self._annotate("warning", self._redact(message))

    @contextmanager
    def _plain_group(self, title: str) -> Iterator[None]:
        self._write(f"== {title}", "group")
        yield

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        fold = (self._fold(title) if self._fold is not None and self.verbosity >= 0
                else self._plain_group(title) if self.verbosity >= 0 else _nothing())
        with fold:
            yield
            took = time.monotonic() - started
            if took >= SLOW_GROUP:
                self.info(f"   ({took:.1f}s)")

    @contextmanager
    def waiting(self, what: str) -> Iterator[Progress]:
        yield _Heartbeat(self, what)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
