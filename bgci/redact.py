"""Secrets from the environment never reach a log line, a JUnit file or a JSON report."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Variables whose values count as secrets: by name, plus any listed in BGCI_SECRETS (comma-separated).
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH",
                         re.IGNORECASE)
MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words and digits


class Redactor:
    def __init__(self, environ: Mapping[str, str]) -> None:
        listed = {n.strip() for n in environ.get("BGCI_SECRETS", "").split(",") if n.strip()}
        values = {
            value for name, value in environ.items()
            if (name in listed or SECRET_NAME.search(name)) and len(value) >= MIN_LENGTH
        }
        # longest first, so a secret containing another is masked whole
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value) if self._pattern else value

    def deep(self, value: Any) -> Any:
        """``value`` with every string inside (dicts, lists, dataclass-free data) redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.deep(v) for v in value)
        return value
