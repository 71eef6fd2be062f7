"""Report writers: every stage, pass or fail, leaves ``<stage>.xml``, ``<stage>.json`` and
``bgci.env`` in the reports dir (SPEC section 4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bgci.atomic import write_atomic
from bgci.model import StageResult
from bgci.report import html
from bgci.report.dotenv import DOTENV_NAME, env_values, update_dotenv
from bgci.report.jsonfile import to_json
from bgci.report.junit import to_junit
from bgci.report.text import fix_surrogates
from bgci.report.timeline import svg

__all__ = [
    "DOTENV_NAME",
    "Properties",
    "env_values",
    "to_json",
    "to_junit",
    "update_dotenv",
    "write_reports",
]

Properties = Mapping[str, str]
_STAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def write_reports(result: StageResult, reports_dir: Path, properties: Properties) -> list[Path]:
    """Write ``<stage>.xml`` and ``<stage>.json``, merge into ``bgci.env``, and rewrite
    ``report.html`` in ``reports_dir`` (created if missing); a stage that moved live traffic also
    leaves ``<stage>-timeline.svg``, attached to its JUnit report. Returns the paths: JUnit XML,
    JSON, dotenv, the page (and the timeline when there is one).

    Each file is replaced atomically, so a reader never sees half a report. ``properties`` become
    the JUnit suite properties (app, colour, image, digest, bgci version, CI job URL).
    """
    if not _STAGE.match(result.stage):
        # The stage names a file: refuse anything that could leave the reports dir.
        raise ValueError(f"stage name is not usable as a file name: {result.stage!r}")
    reports_dir.mkdir(parents=True, exist_ok=True)
    xml_path = reports_dir / f"{result.stage}.xml"
    json_path = reports_dir / f"{result.stage}.json"
    env_path = reports_dir / DOTENV_NAME
    page = reports_dir / html.NAME
    timeline = result.extra.get("timeline")
    pictures: list[Path] = []
    if timeline:
        picture = (reports_dir / f"{result.stage}-timeline.svg").resolve()
        write_atomic(picture, svg(timeline, title(result)))
        pictures.append(picture)
    write_atomic(xml_path, to_junit(result, properties, attachments=pictures))
    write_atomic(json_path, to_json(result))
    update_dotenv(env_path, env_values(result))
    write_atomic(page, fix_surrogates(html.render(result, html.results_in(reports_dir, result))))
    return [xml_path, json_path, env_path, page, *pictures]


def title(result: StageResult) -> str:
    """What a stage's timeline is titled: the stage, the app and how it ended."""
    return f"bgci {result.stage} of {result.app}: {result.status}" + (
        f" (live: {result.live_colour})" if result.live_colour else "")
