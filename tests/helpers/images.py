"""Test-environment helpers for the docker end-to-end tests (no pytest import: plain functions).

``scripts/test-env.sh`` builds the local images and the wheelhouse and records them in
``/var/cache/bgci/env``; these helpers read that file, copy the example app into a test's temporary
directory with a ``bgci.toml`` made for the test, and find free ports.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO / "examples" / "flask-app"
ENV_FILE = Path(os.environ.get("BGCI_CACHE", "/var/cache/bgci")) / "env"
ENV_KEYS = ("BGCI_TEST_BASE_IMAGE", "BGCI_TEST_HAPROXY_IMAGE", "BGCI_TEST_WHEELS")

# Where the Dockerfile finds the wheelhouse: make_app_copy puts it in the build context as wheels/.
OFFLINE_PIP_ARGS = "--no-index --find-links /app/wheels"

# SPEC section 3 (plus switch.confirm_requests): the keys a test config may set, so that tests
# cannot drift from the contract. A section maps key -> allowed Python types.
_STR, _BOOL, _TABLE = (str,), (bool,), (dict,)
_INT, _NUM, _LIST = (int,), (int, float), (list,)
_HOOK = {"command": _STR, "run_in": _STR, "timeout": _NUM}
SCHEMA: dict[str, Any] = {
    "app": _STR,
    "build": {"context": _STR, "dockerfile": _STR, "build_args": _TABLE, "test_command": _STR,
              "image": _STR, "push": _BOOL},
    "platform": {"kind": _STR, "port": _INT, "env": _TABLE, "command": _STR, "replicas": _INT,
                 "state_dir": _STR, "volumes": _TABLE,  # and the next: bgci/settings.py
                 "fleet": _LIST},
    "router": {"kind": _STR, "listen": _STR, "preview": _STR, "managed": _BOOL, "image": _STR},
    "health": {"path": _STR, "status": _INT, "contains": _STR, "host": _STR, "timeout": _NUM,
               "interval": _NUM, "deadline": _NUM, "successes": _INT},
    "verify": {"smoke": _STR, "smoke_command": _STR, "p95_ms": _NUM, "against_blue": _BOOL},
    "switch": {"drain": _NUM, "bake": _NUM, "max_error_rate": _NUM, "retire_after": _NUM,
               "confirm_requests": _INT, "max_p95_ms": _NUM, "max_p95_increase": _NUM,
               "log_errors": _STR, "max_log_errors": _INT},
    "hooks": {**{name: _HOOK for name in
                 ("pre_deploy", "post_deploy", "pre_switch", "post_switch", "post_rollback")},
              "on_failure": {**_HOOK, "stages": _STR}},
    "notify": {"url": _STR},
    "lock": {"ttl": _NUM},
    "reports": {"dir": _STR},
}


def test_env() -> dict[str, str]:
    """The facts ``scripts/test-env.sh`` recorded: base image, router image and wheelhouse path.

    Raises RuntimeError, saying how to fix it, when the file or one of its keys is missing.
    """
    hint = "run `bash scripts/test-env.sh` as root first (it builds the local test images)"
    try:
        text = ENV_FILE.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuntimeError(f"{ENV_FILE} does not exist: {hint}") from None
    facts: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            facts[key.strip()] = value.strip()
    missing = [key for key in ENV_KEYS if not facts.get(key)]
    if missing:
        raise RuntimeError(f"{ENV_FILE} lacks {', '.join(missing)}: {hint}")
    return facts


# Its name starts with "test": keep pytest from collecting it where a test module imports it.
test_env.__test__ = False  # type: ignore[attr-defined]


def default_config(facts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The test ``bgci.toml`` before overrides: offline build on the local base image, the local
    HAProxy image, and short health/drain times. Ports are fixed: pass free ones as overrides."""
    facts = facts if facts is not None else test_env()
    return {
        "app": "flask-demo-e2e",
        "build": {"build_args": {"BASE_IMAGE": facts["BGCI_TEST_BASE_IMAGE"],
                                 "PIP_ARGS": OFFLINE_PIP_ARGS}},
        "platform": {"kind": "docker", "port": 8000},
        "router": {"kind": "haproxy", "listen": "127.0.0.1:18080", "preview": "127.0.0.1:18081",
                   "image": facts["BGCI_TEST_HAPROXY_IMAGE"]},
        "health": {"path": "/healthz", "interval": 0.2, "deadline": 60},
        "verify": {"smoke": "smoke"},
        "switch": {"drain": 1, "confirm_requests": 10},
    }


def make_app_copy(
    dest: Path,
    version: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    unhealthy: bool = False,
) -> Path:
    """Copy examples/flask-app into ``dest`` (created) and return ``dest``.

    The copy gets the wheelhouse as ``wheels/``, ``VERSION`` set to ``version``, a file
    ``UNHEALTHY`` when ``unhealthy`` (its /healthz then answers 503) and a ``bgci.toml`` made of
    :func:`default_config` with ``overrides`` applied. Overrides are nested sections
    (``{"router": {"listen": "127.0.0.1:9000"}}``) or dotted keys (``{"router.listen": ...}``,
    ``{"hooks.pre_switch": {"command": "true"}}``); ``None`` as a value removes the key. Keys
    outside SPEC section 3 raise ValueError.
    """
    facts = test_env()
    config = default_config(facts)
    apply_overrides(config, overrides or {})  # first: a bad key must not leave a half-made copy
    wheels = Path(facts["BGCI_TEST_WHEELS"])
    wheel_files = sorted(wheels.glob("*.whl"))
    if not wheel_files:
        raise RuntimeError(f"no wheels in {wheels}: run `bash scripts/test-env.sh` as root first")
    dest = Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".benchmarks",
                                    "bgci-reports", "wheels", "UNHEALTHY")
    shutil.copytree(EXAMPLE_APP, dest, ignore=ignore, dirs_exist_ok=True)
    (dest / "wheels").mkdir(exist_ok=True)
    for wheel in wheel_files:
        shutil.copy2(wheel, dest / "wheels" / wheel.name)
    (dest / "VERSION").write_text(f"{version}\n", encoding="utf-8")
    if unhealthy:
        (dest / "UNHEALTHY").write_text("made unhealthy by the test\n", encoding="utf-8")
    (dest / "bgci.toml").write_text(to_toml(config), encoding="utf-8")
    return dest


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Merge ``overrides`` (see :func:`make_app_copy`) into ``config`` in place, checking keys."""
    for key, value in overrides.items():
        path = key.split(".")
        schema = _schema_at(path)
        if isinstance(schema, dict) and isinstance(value, Mapping):
            for sub_key, sub_value in value.items():  # a section (or a hook): merge key by key
                apply_overrides(config, {f"{key}.{sub_key}": sub_value})
            continue
        if isinstance(schema, dict):
            raise ValueError(f"config override {key!r}: expected a table of {sorted(schema)}")
        parent = config
        for part in path[:-1]:
            parent = parent.setdefault(part, {})
        if value is None:
            parent.pop(path[-1], None)
            continue
        if not isinstance(value, schema) or (isinstance(value, bool) and bool not in schema):
            names = " or ".join(t.__name__ for t in schema)
            raise ValueError(f"config override {key!r}: expected {names}, got {value!r}")
        parent[path[-1]] = dict(value) if isinstance(value, dict) else value


def _schema_at(path: list[str]) -> Any:
    node: Any = SCHEMA
    for depth, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(path[:depth]) or "the top level"
            options = sorted(node) if isinstance(node, dict) else []
            raise ValueError(f"config key {'.'.join(path)!r} is not in SPEC section 3 "
                             f"(keys at {where}: {options})")
        node = node[part]
    return node


def to_toml(config: Mapping[str, Any]) -> str:
    """Render a config dict as TOML: top-level scalars, then one ``[table]`` per section (nested
    sections such as ``hooks.pre_switch`` as ``[hooks.pre_switch]``), dict values inline."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in config.items():
        if isinstance(value, Mapping) and isinstance(SCHEMA.get(key), dict):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    while tables:
        name, table = tables.pop(0)
        body = []
        for key, value in table.items():
            nested = _schema_or_none([*name.split("."), key])
            if isinstance(value, Mapping) and isinstance(nested, dict):
                tables.append((f"{name}.{key}", value))
            else:
                body.append(f"{_key(key)} = {_value(value)}")
        if body:
            lines += ["", f"[{name}]", *body]
    return "\n".join(lines) + "\n"


def _schema_or_none(path: list[str]) -> Any:
    try:
        return _schema_at(path)
    except ValueError:
        return None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")
