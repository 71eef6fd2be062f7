"""The one way stages talk to a human: lines on stderr, foldable groups (the CI adapter decides how)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Log(Protocol):
    def info(self, message: str) -> None: ...

    def debug(self, message: str) -> None: ...

    def group(self, title: str) -> AbstractContextManager[None]: ...


class StderrLog:
    """Plain log; ``fold`` wraps group titles in the CI's folding markers."""

    def __init__(
        self,
        verbosity: int = 0,
        fold: Callable[[str], AbstractContextManager[None]] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.verbosity = verbosity
        self._fold = fold
        self._redact = redact
        self._t0 = time.monotonic()

    def _write(self, message: str) -> None:
        stamp = f"[{time.monotonic() - self._t0:6.1f}s]"
        for line in self._redact(message).splitlines() or [""]:
            sys.stderr.write(f"bgci {stamp} {line}\n")
        sys.stderr.flush()

    def info(self, message: str) -> None:
        if self.verbosity >= 0:
            self._write(message)

    def debug(self, message: str) -> None:
        if self.verbosity > 0:
            self._write(message)

    @contextmanager
    def _plain_group(self, title: str) -> Iterator[None]:
        self.info(f"== {title}")
        yield

    def group(self, title: str) -> AbstractContextManager[None]:
        if self._fold is not None and self.verbosity >= 0:
            return self._fold(title)
        return self._plain_group(title)
