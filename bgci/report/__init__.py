"""Report writers: every stage, pass or fail, leaves ``<stage>.xml``, ``<stage>.json`` and
``bgci.env`` in the reports dir (SPEC section 4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bgci.atomic import write_atomic
from bgci.model import StageResult
from bgci.report.dotenv import DOTENV_NAME, env_values, update_dotenv
from bgci.report.jsonfile import to_json
from bgci.report.junit import to_junit

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
    """Write ``<stage>.xml`` and ``<stage>.json`` and merge into ``bgci.env`` in ``reports_dir``
    (created if missing). Returns the three paths: JUnit XML, JSON, dotenv.

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
    write_atomic(xml_path, to_junit(result, properties))
    write_atomic(json_path, to_json(result))
    update_dotenv(env_path, env_values(result))
    return [xml_path, json_path, env_path]
