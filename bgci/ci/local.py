"""No CI (a developer's shell, or a CI bgci does not know): plain section titles, no outputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bgci.lock import default_holder
from bgci.model import StageResult
from bgci.report.text import one_line


class Local:
    """Runs anywhere; the fallback when no CI is detected."""

    name = "local"

    def __init__(self, environ: Mapping[str, str]) -> None:
        # A snapshot: what the job was started with, not what a hook later changes.
        self.environ = dict(environ)

    @staticmethod
    def detect(environ: Mapping[str, str]) -> bool:
        """Always true: local is the last resort."""
        return True

    def job_url(self) -> str:
        """No job: empty."""
        return ""

    def holder(self) -> str:
        """``user@host pid N``."""
        return default_holder()

    @contextmanager
    def fold(self, title: str) -> Iterator[None]:
        """A ``== title`` line before the block; a plain log has nothing to fold."""
        sys.stdout.flush()
        print(f"== {one_line(title)}", file=sys.stderr, flush=True)
        yield

    def annotate(self, level: str, message: str, file: str = "", line: int = 0) -> None:
        """No annotations: the log line is all there is."""

    def publish(self, result: StageResult, values: Mapping[str, str], report: Path) -> None:
        """Nothing to publish: the reports dir is the output."""
