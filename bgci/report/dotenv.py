"""``bgci.env``: the facts later jobs need, as GitLab ``artifacts:reports:dotenv`` reads them.

GitLab's dotenv parser splits each line at the first ``=``, strips blanks around key and value,
keeps quotes as part of the value and rejects empty lines, comments and multi-line values. So
values are written unquoted (quoting would put the quotes into the variable), on one line, with
no surrounding blanks: every value this module writes reads back unchanged in GitLab.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bgci.atomic import write_atomic
from bgci.model import StageResult
from bgci.report.text import one_line

DOTENV_NAME = "bgci.env"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def env_values(result: StageResult) -> dict[str, str]:
    """The ``BGCI_*`` facts of ``result``; empty ones are left out so they never erase a value
    an earlier stage wrote (``verify`` does not know the image ``build`` made), except the live
    colour of a stage that looked at live traffic: nothing answering is a fact too, and an old
    value would be a claim nobody observed."""
    pairs = {
        "BGCI_LIVE_COLOR": result.live_colour or "",
        "BGCI_IDLE_COLOR": result.idle_colour or "",
        "BGCI_IMAGE": result.image,
        "BGCI_DIGEST": result.digest,
        "BGCI_LIVE_URL": result.live_url,
        "BGCI_PREVIEW_URL": result.preview_url,
    }
    observed = {"BGCI_LIVE_COLOR"} if result.observed else set()
    return {key: value for key, value in pairs.items() if value or key in observed}


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``KEY=value`` pairs of ``path`` as GitLab reads them; ``{}`` when it does not exist.

    Lines GitLab would reject (blank, comments, no ``=``, invalid key) are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and _KEY.match(key):
            values[key] = value.strip()
    return values


def update_dotenv(path: Path, values: Mapping[str, str]) -> dict[str, str]:
    """Merge ``values`` into the dotenv file at ``path`` (created if missing); return the result.

    Keys already in the file keep their place and, unless ``values`` has them, their value.
    Newlines and control characters in a value become spaces and surrounding blanks are
    stripped, because GitLab cannot carry them. Raises ValueError for a key that is not a
    valid variable name.
    """
    merged = read_dotenv(path)
    for key, value in values.items():
        if not _KEY.match(key):
            raise ValueError(f"not a valid dotenv variable name: {key!r}")
        merged[key] = one_line(value)
    write_atomic(path, "".join(f"{key}={value}\n" for key, value in merged.items()))
    return merged
