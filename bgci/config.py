"""Loading the configuration (``bgci.toml`` or ``[tool.bgci]``): find, merge, type, validate.

The keys themselves are the dataclasses of ``bgci.settings``. Precedence: command line (``--set``)
> environment (``BGCI_<SECTION>_<KEY>``) > config file > defaults. What the registry knows (the
platform and router kinds, each router's own keys and rules) it checks itself: ``bgci.registry``;
the rules across keys are ``bgci.config_checks``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from bgci.config_checks import check_values, suggest, valid_app
from bgci.errors import ConfigError
from bgci.settings import (
    INTERNAL,
    AnalysisConfig,
    BuildConfig,
    Config,
    FailureHookConfig,
    HealthConfig,
    HookConfig,
    HooksConfig,
    LockConfig,
    NotifyConfig,
    PlatformConfig,
    ReportsConfig,
    RouterConfig,
    SwitchConfig,
    VerifyConfig,
    split_address,
)

__all__ = [
    "AnalysisConfig", "BuildConfig", "Config", "FailureHookConfig", "HealthConfig", "HookConfig",
    "HooksConfig", "LockConfig", "NotifyConfig", "PlatformConfig", "ReportsConfig", "RouterConfig",
    "SwitchConfig", "VerifyConfig", "find_config", "load_config", "scalar_keys", "split_address",
    "valid_app",
]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def find_config(explicit: str | None, cwd: Path) -> tuple[Path | None, dict[str, Any]]:
    """Locate and parse the config: ``explicit``, else ``bgci.toml``, else ``[tool.bgci]``."""
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise ConfigError(f"config file {explicit} does not exist", "check --config/BGCI_CONFIG")
        return path, _section(path, _read_toml(path))
    for name in ("bgci.toml", "pyproject.toml"):
        path = cwd / name
        if path.is_file():
            data = _read_toml(path)
            if name == "bgci.toml" or "bgci" in data.get("tool", {}):
                return path, _section(path, data)
    return None, {}


def has_config(explicit: str | None, cwd: Path) -> bool:
    """Whether there is a config to load (``explicit``, ``bgci.toml`` or ``[tool.bgci]``)."""
    try:
        return explicit is not None or find_config(None, cwd)[0] is not None
    except ConfigError:
        return True  # there is one, only broken


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        parsed: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return parsed
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _section(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    if path.name == "pyproject.toml":
        section = data.get("tool", {}).get("bgci", {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [tool.bgci] must be a table")
        return section
    return data


def load_config(
    explicit: str | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Config:
    """Load, merge and validate the configuration. Raises ConfigError (exit 2) on any problem,
    naming where the wrong value came from: the file and line, the variable, or ``--set``."""
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    path, data = find_config(explicit, cwd)
    looked = " and ".join(str(cwd / name) for name in ("bgci.toml", "pyproject.toml"))
    source = str(path) if path else f"no config file ({looked}, with [tool.bgci], do not exist)"
    origins = _file_origins(path, data) if path else {}
    merged = _deep_copy(data)
    for key, raw in _env_overrides(environ):
        origin = f"environment variable {_env_name(key)}"
        _assign(merged, key, raw, origin)
        origins[key] = origin
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. router.listen=:8080")
        key, raw = item.split("=", 1)
        key = key.strip()
        _assign(merged, key, raw, f"--set {key}")
        origins[key] = f"--set {key}"
    config: Config = _build(Config, merged, origins, source, "")
    config.source = source
    config.origins = origins
    config.root = path.parent if path else cwd
    check_values(config)
    return config


def _file_origins(path: Path, data: dict[str, Any]) -> dict[str, str]:
    """dotted key -> ``path:line`` for every value the file sets (the line found by looking for
    ``key =`` in the key's table; the file alone when it cannot be told)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    prefix = "tool.bgci." if path.name == "pyproject.toml" else ""
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    table = ""
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        match = header.match(line)
        if match:
            table = match.group(1).strip()
            table = table[len(prefix):] if prefix and table.startswith(prefix) else (
                "" if table == prefix.rstrip(".") else table)
            continue
        key = line.split("=", 1)[0].strip().strip('"') if "=" in line else ""
        if key and not line.lstrip().startswith("#"):
            found.setdefault(f"{table}.{key}" if table else key, f"{path}:{number}")
    origins = {}
    for dotted in _dotted(data):
        origins[dotted] = found.get(dotted) or found.get(dotted.rpartition(".")[0]) or str(path)
    return origins


def _dotted(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = prefix + key
        keys.append(dotted)
        if isinstance(value, dict):
            keys += _dotted(value, dotted + ".")
    return keys


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _env_name(key: str) -> str:
    return "BGCI_" + key.replace(".", "_").upper()


# tables of strings whose entries the environment and --set may set one by one
_TABLES = ("platform.env", "build.build_args", "platform.hosts")
# ... whose entries are named in lower case (colours): BGCI_PLATFORM_HOSTS_BLUE sets hosts.blue
_LOWER_CASE_TABLES = ("platform.hosts",)


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``BGCI_<SECTION>_<KEY>`` for every scalar key in the schema (hooks: BGCI_HOOKS_<HOOK>_<KEY>),
    and ``BGCI_PLATFORM_ENV_<NAME>`` for one variable of platform.env (its name as written)."""
    found = []
    for key in scalar_keys():
        name = _env_name(key)
        if name in environ:
            found.append((key, environ[name]))
        if key in _TABLES:
            table_prefix = name + "_"
            lower = key in _LOWER_CASE_TABLES
            found += [(f"{key}.{var[len(table_prefix):].lower() if lower else var[len(table_prefix):]}",
                       value)
                      for var, value in sorted(environ.items())
                      if var.startswith(table_prefix) and len(var) > len(table_prefix)]
    return found


def scalar_keys(cls: type[Any] = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema whose value is not a table of its own."""
    keys: list[str] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in INTERNAL:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            keys.extend(scalar_keys(typ, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            keys.append(prefix + f.name)
    return keys


def _assign(data: dict[str, Any], dotted: str, raw: str, origin: str) -> None:
    table = next((t for t in _TABLES if dotted.startswith(t + ".")), "")
    if table:  # one entry of a table of strings: the rest of the table stays
        *parents, leaf = table.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        entries = node.setdefault(leaf, {})
        if not isinstance(entries, dict):
            raise ConfigError(f"{origin}: {table} is not a table in the config file")
        entries[dotted[len(table) + 1:]] = raw
        return
    if dotted not in scalar_keys():
        raise ConfigError(f"{origin}: unknown key {dotted!r}{suggest(dotted, scalar_keys())}")
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{origin}: {part!r} is not a table in the config file")
    node[leaf] = _parse_scalar(raw)


def _parse_scalar(raw: str) -> Any:
    """A value from the environment or --set: TOML syntax when it parses, else a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(cls: type[Any], data: Any, origins: Mapping[str, str], source: str,
           prefix: str) -> Any:
    where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
    if not isinstance(data, dict):
        origin = origins.get(prefix.rstrip("."), source)
        raise ConfigError(f"{origin}: {where} must be a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in INTERNAL]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{origins.get(prefix + key, source)}: unknown key {prefix + key!r} in {where}"
                f"{suggest(key, names)}"
            )
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in data:
            continue
        typ, value, key = hints[name], data[name], prefix + name
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, origins, source, key + ".")  # type: ignore[arg-type]
        elif get_origin(typ) is list and get_args(typ)[0] is str:  # an array of strings
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{origins.get(key, source)}: {key} must be an array of "
                                  f"strings, got {value!r}")
            kwargs[name] = list(value)
        elif get_origin(typ) is list:  # an array of tables: [[analysis]]
            entry = get_args(typ)[0]
            if not isinstance(value, list):
                raise ConfigError(f"{origins.get(key, source)}: {key} must be an array of tables "
                                  f"([[{key}]]), got {type(value).__name__}")
            kwargs[name] = [_build(entry, item, origins, origins.get(key, source),
                                   f"{key}[{i + 1}].") for i, item in enumerate(value)]
        else:
            kwargs[name] = _coerce(typ, value, origins.get(key, source), key)
    return cls(**kwargs)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(typ: Any, value: Any, source: str, key: str) -> Any:
    if get_origin(typ) is dict:
        if not isinstance(value, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in value.values()
        ):
            raise ConfigError(f"{source}: {key} must be a table of strings, got {value!r}")
        return {str(k): _stringify(v) for k, v in value.items()}
    ok = (
        isinstance(value, bool)
        if typ is bool
        else (isinstance(value, typ) and not isinstance(value, bool))
        or (typ is float and isinstance(value, int) and not isinstance(value, bool))
    )
    if not ok:
        raise ConfigError(
            f"{source}: {key} must be {_TYPE_WORDS.get(typ, typ)}, got {value!r}"
            f" ({type(value).__name__})"
        )
    if typ is float and not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    return float(value) if typ is float else value


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
