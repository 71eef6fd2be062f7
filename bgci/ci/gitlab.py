"""GitLab CI: collapsible log sections. Outputs travel through ``bgci.env`` (dotenv report)."""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bgci.lock import default_holder
from bgci.model import StageResult
from bgci.report.text import one_line

_NOT_NAME = re.compile(r"[^a-z0-9_.-]+")


class GitLabCI:
    """A GitLab CI job."""

    name = "gitlab"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)

    @staticmethod
    def detect(environ: Mapping[str, str]) -> bool:
        """GitLab runners set ``GITLAB_CI=true``."""
        return environ.get("GITLAB_CI") == "true"

    def job_url(self) -> str:
        """``$CI_JOB_URL``."""
        return self.environ.get("CI_JOB_URL", "")

    def holder(self) -> str:
        """``gitlab <group/project> job <id>``; user@host when the job is unknown."""
        project = self.environ.get("CI_PROJECT_PATH", "")
        job = self.environ.get("CI_JOB_ID", "")
        if not (project or job):
            return default_holder()
        return " ".join(part for part in ("gitlab", project, f"job {job}" if job else "") if part)

    @contextmanager
    def fold(self, title: str) -> Iterator[None]:
        """A collapsed ``section_start``/``section_end`` pair around the block."""
        title = one_line(title)
        # Section names must be unique in the job log (several bgci stages may share one job)
        # and use only [a-z0-9_.-].
        slug = _NOT_NAME.sub("_", title.lower()).strip("_")[:40]
        name = f"bgci_{slug}_{uuid.uuid4().hex[:8]}"
        _marker(f"section_start:{int(time.time())}:{name}[collapsed=true]\r\x1b[0K{title}")
        try:
            yield
        finally:
            _marker(f"section_end:{int(time.time())}:{name}\r\x1b[0K")

    def annotate(self, level: str, message: str, file: str = "", line: int = 0) -> None:
        """GitLab has no annotations in a job log: the failed JUnit case shows in the MR."""

    def publish(self, result: StageResult, values: Mapping[str, str], report: Path) -> None:
        """Nothing beyond the reports: the template declares bgci.env as a dotenv report."""


def _marker(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"\x1b[0K{text}\n")
    sys.stderr.flush()
