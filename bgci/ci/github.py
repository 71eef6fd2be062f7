"""GitHub Actions: ``::group::`` folds, step outputs in ``$GITHUB_OUTPUT``, a job summary."""

from __future__ import annotations

import html
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bgci.lock import default_holder
from bgci.model import Check, StageResult
from bgci.report.text import fix_surrogates, one_line
from bgci.report.timeline import mermaid

# Step output name -> the bgci.env variable it mirrors.
OUTPUTS = {
    "live-color": "BGCI_LIVE_COLOR",
    "idle-color": "BGCI_IDLE_COLOR",
    "image": "BGCI_IMAGE",
    "digest": "BGCI_DIGEST",
    "live-url": "BGCI_LIVE_URL",
    "preview-url": "BGCI_PREVIEW_URL",
}
_ICONS = {
    "passed": "✅",
    "failed": "❌",
    "error": "💥",
    "refused": "⛔",
    "skipped": "⏭️",
}
_SUMMARY_MESSAGE_LIMIT = 300  # the summary is a glance; the JUnit report has the full text


class GitHubActions:
    """A GitHub Actions job step."""

    name = "github"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self._depth = 0

    @staticmethod
    def detect(environ: Mapping[str, str]) -> bool:
        """The runner sets ``GITHUB_ACTIONS=true``."""
        return environ.get("GITHUB_ACTIONS") == "true"

    def job_url(self) -> str:
        """``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID``."""
        repo = self.environ.get("GITHUB_REPOSITORY", "")
        run = self.environ.get("GITHUB_RUN_ID", "")
        if not (repo and run):
            return ""
        server = self.environ.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"

    def holder(self) -> str:
        """``github <owner/repo> run <id> job <job>``; user@host when the run is unknown."""
        repo = self.environ.get("GITHUB_REPOSITORY", "")
        run = self.environ.get("GITHUB_RUN_ID", "")
        job = self.environ.get("GITHUB_JOB", "")
        if not (repo or run):
            return default_holder()
        parts = ["github", repo, f"run {run}" if run else "", f"job {job}" if job else ""]
        return " ".join(part for part in parts if part)

    @contextmanager
    def fold(self, title: str) -> Iterator[None]:
        """``::group::title`` ... ``::endgroup::``; a nested fold is a plain ``== title`` line,
        because GitHub groups do not nest (an inner group would end the outer one)."""
        title = _command_data(one_line(title))
        sys.stdout.flush()
        if self._depth:
            print(f"== {title}", file=sys.stderr, flush=True)
            yield
            return
        print(f"::group::{title}", file=sys.stderr, flush=True)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            sys.stdout.flush()
            print("::endgroup::", file=sys.stderr, flush=True)

    def annotate(self, level: str, message: str, file: str = "", line: int = 0) -> None:
        """``::error file=F,line=L,title=bgci::message`` (or ``::warning``): GitHub shows it on the
        run's summary and, with a file and line, on the file in the pull request."""
        props = [f"file={_property(file)}"] if file else []
        props += [f"line={line}"] if file and line else []
        props.append(f"title={_property('bgci')}")
        sys.stdout.flush()
        print(f"::{'error' if level == 'error' else 'warning'} {','.join(props)}::"
              f"{_command_data(fix_surrogates(message))}", file=sys.stderr, flush=True)

    def publish(self, result: StageResult, values: Mapping[str, str], report: Path) -> None:
        """Append the step outputs to ``$GITHUB_OUTPUT`` and a summary to
        ``$GITHUB_STEP_SUMMARY`` (each skipped when the variable is unset)."""
        output_file = self.environ.get("GITHUB_OUTPUT")
        if output_file:
            outputs = {name: values.get(var, "") for name, var in OUTPUTS.items()}
            outputs["report"] = str(report)
            _append(Path(output_file), "".join(_heredoc(k, v) for k, v in outputs.items()))
        summary_file = self.environ.get("GITHUB_STEP_SUMMARY")
        if summary_file:
            _append(Path(summary_file), summary(result, values))


def summary(result: StageResult, values: Mapping[str, str]) -> str:
    """The stage as Markdown: a facts table, then one row per check with outcome and seconds."""
    icon = _ICONS.get(result.status, "")
    lines = [
        f"### {icon} bgci {_cell(result.stage)}: {result.status} (exit {result.exit_code})",
        "",
    ]
    if result.message:
        lines += [_cell(_shorten(result.message)), ""]
    facts = {
        "app": result.app,
        "live colour": values.get("BGCI_LIVE_COLOR", result.live_colour or ""),
        "idle colour": values.get("BGCI_IDLE_COLOR", result.idle_colour or ""),
        "image": values.get("BGCI_IMAGE", result.image),
        "digest": values.get("BGCI_DIGEST", result.digest),
        "live URL": values.get("BGCI_LIVE_URL", result.live_url),
        "preview URL": values.get("BGCI_PREVIEW_URL", result.preview_url),
    }
    lines += ["| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in facts.items() if value]
    if result.checks:
        lines += ["", "| check | outcome | seconds | message |", "|---|---|---:|---|"]
        lines += [_check_row(check) for check in result.checks]
    timeline = result.extra.get("timeline")
    if timeline:  # GitHub draws Mermaid itself: the switch as a picture, with no upload
        lines += ["", mermaid(timeline, f"{result.stage}: requests per colour").rstrip("\n")]
    return "\n".join(lines) + "\n\n"


def _check_row(check: Check) -> str:
    outcome = f"{_ICONS.get(check.outcome, '')} {check.outcome}"
    message = _cell(_shorten(check.message))
    return f"| {_cell(check.name)} | {outcome} | {check.seconds:.2f} | {message} |"


def _shorten(text: str) -> str:
    text = one_line(text)
    if len(text) <= _SUMMARY_MESSAGE_LIMIT:
        return text
    return text[: _SUMMARY_MESSAGE_LIMIT - 1] + "…"


def _cell(text: str) -> str:
    # One line, no HTML (GitHub renders it), and a literal "|" must not end the cell.
    return html.escape(one_line(text), quote=False).replace("|", "\\|")


def _command_data(text: str) -> str:
    # The escaping @actions/core applies to workflow command data.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    # ... and to a workflow command's property values.
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def _heredoc(key: str, value: str) -> str:
    """``key<<delimiter`` / value / ``delimiter``: safe for any value, multi-line included.

    The delimiter is random (as @actions/core does) so a value cannot end the block early.
    """
    value = fix_surrogates(value)
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    while delimiter in value:  # pragma: no cover - needs a guessed uuid4
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
    return f"{key}<<{delimiter}\n{value}\n{delimiter}\n"


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
