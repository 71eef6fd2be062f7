"""Secrets never reach a log line, a JUnit file, a JSON report or the webhook.

A value counts as a secret when its name says so (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``,
``*_KEY``, ..., or a name listed in ``BGCI_SECRETS``, comma-separated): the environment's
variables, the app's ``platform.env`` entries, and ``NAME=value`` words or ``--password value``
options in the commands a user wrote for a shell (hooks). The password of a URL
(``postgres://user:password@host``) is one too, whatever the variable is called.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|_PASS$|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|_KEY$|"
                         r"CREDENTIAL|AUTH", re.IGNORECASE)
MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words and digits
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/:@\s]*:([^@\s/]+)@", re.IGNORECASE)


def listed(environ: Mapping[str, str]) -> set[str]:
    """The names ``BGCI_SECRETS`` adds to the secret ones."""
    return {n.strip() for n in environ.get("BGCI_SECRETS", "").split(",") if n.strip()}


def is_secret_name(name: str, extra_names: Iterable[str] = ()) -> bool:
    """Whether a variable called ``name`` holds a secret (by its name, or ``extra_names``)."""
    return name in set(extra_names) or bool(SECRET_NAME.search(name))


def secret_values(named: Mapping[str, str], extra_names: Iterable[str] = ()) -> set[str]:
    """The values of ``named`` whose names look secret (or are in ``extra_names``)."""
    extra = set(extra_names)
    found = {value for name, value in named.items() if is_secret_name(name, extra)}
    for value in named.values():
        found |= url_passwords(value)
    return {value for value in found if len(value) >= MIN_LENGTH}


def url_passwords(text: str) -> set[str]:
    """The passwords of the URLs in ``text`` (``scheme://user:password@host``)."""
    return set(_URL_PASSWORD.findall(text))


def secrets_in_command(command: str, extra_names: Iterable[str] = ()) -> set[str]:
    """Secret-looking values in a shell command: ``NAME=value`` words with a secret name, and the
    value of an option with one (``--password=x``, ``--token x``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    extra = set(extra_names)
    found = set()
    for i, word in enumerate(words):
        name, sep, value = word.partition("=")
        option = name.lstrip("-").replace("-", "_")
        if sep and (option in extra or SECRET_NAME.search(option)):
            found.add(value)
        elif word.startswith("-") and not sep and SECRET_NAME.search(option) and i + 1 < len(words):
            found.add(words[i + 1])
    return {value for value in found if len(value) >= MIN_LENGTH}


class Redactor:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.extra_names = listed(environ)
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secret_values(environ, self.extra_names))

    def add(self, values: Iterable[str]) -> None:
        """Mask ``values`` too (from here on)."""
        self._values |= {v for v in values if len(v) >= MIN_LENGTH}
        # longest first, so a secret containing another is masked whole
        ordered = sorted(self._values, key=len, reverse=True)
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
