"""`bgci config`: the resolved configuration, each value with where it came from.

Origins are those the loader recorded (``bgci.toml:12``, ``environment variable BGCI_...``,
``--set key``); a key nobody set shows ``default``. Secrets are masked: ``platform.env`` entries
with a secret-looking name (or one listed in ``BGCI_SECRETS``) here, and the path of the webhook
URL (a Slack or Teams webhook URL is a credential); secret words in the commands (``TOKEN=...``,
``--password x``) and secret values of the environment by the writer bgci prints through.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bgci.config import scalar_keys
from bgci.redact import is_secret_name, listed
from bgci.settings import Config

MASK = "********"
TABLES = ("platform.env", "build.build_args")


@dataclass(frozen=True)
class Entry:
    key: str  # dotted: "health.path", "platform.env.DATABASE_URL"
    value: Any
    origin: str  # "bgci.toml:12", "environment variable BGCI_X", "--set x", "default"


def show(config: Config, write: Callable[[str], None], *, as_json: bool = False) -> int:
    """Write the resolved configuration (TOML with origins, or JSON) to ``write``, which masks
    the secret values the configuration and the environment hold."""
    found = entries(config, listed(os.environ))
    write((to_json(config, found) if as_json else render(config, found)) + "\n")
    return 0


def entries(config: Config, extra_names: Iterable[str] = ()) -> list[Entry]:
    """Every key of ``config`` with its value and origin, in schema order; ``platform.env``
    entries with a secret name (or one in ``extra_names``) masked."""
    found = []
    for key in scalar_keys():
        value = config_value(config, key)
        if key in TABLES:
            for name, item in sorted(value.items()):
                dotted = f"{key}.{name}"
                secret = is_secret_name(name, extra_names)
                found.append(Entry(dotted, MASK if secret and item else item,
                                   config.origins.get(dotted) or _origin(config, key)))
            continue
        if key == "notify.url" and value:
            parts = urlsplit(str(value))
            value = f"{parts.scheme}://{parts.netloc}/{MASK}" if parts.path.strip("/") else value
        found.append(Entry(key, value, _origin(config, key)))
    return found


def config_value(config: Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def render(config: Config, found: list[Entry]) -> str:
    """TOML a person reads (and could paste back), each value's origin as a comment."""
    lines = [f"# bgci's configuration for {config.app}, resolved from {config.source}",
             "# (each value's origin on its right; secrets masked)"]
    table = None
    width = max((len(_assignment(e, _table_of(e.key))) for e in found), default=0)
    for entry in found:
        here = _table_of(entry.key)
        if here != table:
            table = here
            lines.append(f"\n[{here}]" if here else "")
        assignment = _assignment(entry, here)
        lines.append(f"{assignment.ljust(width)}  # {entry.origin}")
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def to_json(config: Config, found: list[Entry]) -> str:
    return json.dumps({"app": config.app, "source": config.source,
                       "values": {e.key: {"value": e.value, "origin": e.origin} for e in found}},
                      indent=2)


def _table_of(key: str) -> str:
    for table in TABLES:
        if key.startswith(table + "."):
            return table
    return key.rpartition(".")[0]


def _assignment(entry: Entry, table: str) -> str:
    name = entry.key[len(table) + 1:] if table else entry.key
    if not name.replace("_", "").isalnum():
        name = json.dumps(name)
    return f"{name} = {_toml(entry.value)}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _origin(config: Config, key: str) -> str:
    return config.origins.get(key) or "default"
