"""What bgci needs from the CI system it runs in: job URL, lock holder, log folds, outputs.

One module per CI behind the ``CI`` protocol, registered in ``ADAPTERS`` in detection order.
Adapters take the environment as a mapping (never ``os.environ`` directly) so tests can pass
a clean dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from bgci.ci.github import GitHubActions
from bgci.ci.gitlab import GitLabCI
from bgci.ci.jenkins import Jenkins
from bgci.ci.local import Local
from bgci.model import StageResult


class CI(Protocol):
    """The CI system a stage runs in."""

    name: str

    def job_url(self) -> str:
        """The URL of this CI job (or run), or ``""`` when unknown."""
        ...

    def holder(self) -> str:
        """Who takes the deploy lock, for a human reading ``bgci status`` or a lock message."""
        ...

    def fold(self, title: str) -> AbstractContextManager[None]:
        """Log lines written inside the block appear in a (collapsible) section called title."""
        ...

    def annotate(self, level: str, message: str, file: str = "", line: int = 0) -> None:
        """Raise ``message`` ("error" or "warning") where the CI shows annotations (GitHub's
        ``::error``), pointing at ``file`` and ``line`` when known; nothing elsewhere."""
        ...

    def publish(self, result: StageResult, values: Mapping[str, str], report: Path) -> None:
        """Hand the stage's outcome to the CI: step outputs, job summary (where it has them).

        ``values`` are the ``BGCI_*`` values as written to ``bgci.env``; ``report`` is the
        JUnit XML file.
        """
        ...


class Adapter(Protocol):
    """What ``ADAPTERS`` holds: a CI class, which can tell whether it is the one running."""

    def __call__(self, environ: Mapping[str, str]) -> CI: ...

    def detect(self, environ: Mapping[str, str]) -> bool: ...


# Detection order: the first adapter whose detect() is true wins; local always matches.
ADAPTERS: dict[str, Adapter] = {
    "github": GitHubActions,
    "gitlab": GitLabCI,
    "jenkins": Jenkins,
    "local": Local,
}


def detect_ci(environ: Mapping[str, str]) -> CI:
    """The adapter for the CI described by ``environ`` (pass ``os.environ``); local otherwise."""
    for adapter in ADAPTERS.values():
        if adapter.detect(environ):
            return adapter(environ)
    return Local(environ)


__all__ = ["ADAPTERS", "CI", "Adapter", "detect_ci"]
