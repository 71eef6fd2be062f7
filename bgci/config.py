"""Loading the configuration (``bgci.toml`` or ``[tool.bgci]``): find, merge, type, validate.

The keys themselves are the dataclasses of ``bgci.settings``. Precedence: command line (``--set``)
> environment (``BGCI_<SECTION>_<KEY>``) > config file > defaults. What the registry knows (the
platform and router kinds, each router's own keys and rules) it checks itself: ``bgci.registry``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from bgci import registry
from bgci.errors import ConfigError
from bgci.settings import (
    HOOK_NAMES,
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
from bgci.stages import FAILURE_STAGES

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


_APP_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def valid_app(name: str) -> bool:
    """Whether ``name`` may be an ``app``: 1-40 of [a-z0-9-], not starting or ending with -."""
    return bool(_APP_RE.match(name))


_ADDR_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


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
    _check_values(config)
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
        raise ConfigError(f"{origin}: unknown key {dotted!r}{_suggest(dotted, scalar_keys())}")
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


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(options)}"


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
                f"{_suggest(key, names)}"
            )
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in data:
            continue
        typ, value, key = hints[name], data[name], prefix + name
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, origins, source, key + ".")  # type: ignore[arg-type]
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


def _check_values(config: Config) -> None:
    at = config.origin
    if not config.app:
        raise ConfigError(f"{at('app')}: app is required (e.g. app = \"shop\")",
                          "add it to bgci.toml (or [tool.bgci] in pyproject.toml), or run bgci "
                          "from your project's directory, or pass --config PATH")
    if not _APP_RE.match(config.app):
        raise ConfigError(f"{at('app')}: app = {config.app!r} must be 1-40 of [a-z0-9-], not "
                          "starting or ending with -")
    registry.check(config)
    for name in HOOK_NAMES:
        _choice(config, f"hooks.{name}.run_in", getattr(config.hooks, name).run_in)
    _choice(config, "hooks.on_failure.run_in", config.hooks.on_failure.run_in)
    for stage in config.hooks.on_failure.stage_list:
        if stage not in FAILURE_STAGES:
            raise ConfigError(f"{at('hooks.on_failure.stages')}: hooks.on_failure.stages names "
                              f"{stage!r}, not a stage{_suggest(stage, list(FAILURE_STAGES))}"
                              f" (stages: {', '.join(FAILURE_STAGES)})")
    for name in (*HOOK_NAMES, "on_failure"):
        declared = [k for k in config.origins if k.startswith(f"hooks.{name}.")]
        if declared and not getattr(config.hooks, name).command:
            raise ConfigError(f"{at(declared[0])}: [hooks.{name}] has no command: the hook "
                              "would do nothing", f"set hooks.{name}.command, or remove the table")
    if config.verify.smoke and config.verify.smoke_command:
        raise ConfigError(f"{at('verify.smoke_command')}: verify.smoke and verify.smoke_command "
                          f"are both set ({at('verify.smoke')}): one suite runs, which?",
                          "keep smoke_command to run the suite in the project's environment, or "
                          "smoke to run it with bgci's pytest")
    if config.verify.against_blue and not (config.verify.smoke or config.verify.smoke_command):
        raise ConfigError(f"{at('verify.against_blue')}: verify.against_blue = true needs "
                          "verify.smoke or verify.smoke_command (the suite to run)",
                          "set verify.smoke to your pytest smoke suite, e.g. smoke = \"smoke\"")
    for key in ("router.listen", "router.preview"):
        _address(at(key), key, _get(config, key))
    if config.router.listen == config.router.preview:
        raise ConfigError(f"{at('router.preview')}: router.listen and router.preview must differ")
    if not config.health.path.startswith("/"):
        raise ConfigError(f"{at('health.path')}: health.path must start with /, got "
                          f"{config.health.path!r}")
    positive = ["platform.port", "platform.replicas", "health.timeout", "health.interval",
                "health.deadline", "health.successes", "switch.confirm_requests", "lock.ttl",
                *(f"hooks.{name}.timeout" for name in (*HOOK_NAMES, "on_failure"))]
    for key in positive:
        if _get(config, key) <= 0:
            raise ConfigError(f"{at(key)}: {key} must be greater than 0, got {_get(config, key)}")
    for key in ("verify.p95_ms", "switch.drain", "switch.bake", "switch.retire_after"):
        if _get(config, key) < 0:
            raise ConfigError(f"{at(key)}: {key} must be 0 or more, got {_get(config, key)}")
    if not 0 <= config.switch.max_error_rate <= 1:
        raise ConfigError(f"{at('switch.max_error_rate')}: switch.max_error_rate must be between "
                          f"0 and 1, got {config.switch.max_error_rate}")
    _check_bake(config)
    if not 100 <= config.health.status <= 599:
        raise ConfigError(f"{at('health.status')}: health.status must be an HTTP status code, "
                          f"got {config.health.status}")
    if not 1 <= config.platform.port <= 65535:
        raise ConfigError(f"{at('platform.port')}: platform.port must be 1-65535, got "
                          f"{config.platform.port}")


def _check_bake(config: Config) -> None:
    """The bake's thresholds, its log pattern and the [[analysis]] entries."""
    at, switch = config.origin, config.switch
    for key in ("switch.max_p95_ms", "switch.max_p95_increase"):
        if _get(config, key) < 0:
            raise ConfigError(f"{at(key)}: {key} must be 0 (off) or more, got {_get(config, key)}")
    if switch.max_log_errors < -1:
        raise ConfigError(f"{at('switch.max_log_errors')}: switch.max_log_errors must be -1 "
                          f"(report only), 0 or more, got {switch.max_log_errors}")
    try:
        re.compile(switch.log_errors)
    except re.error as exc:
        raise ConfigError(f"{at('switch.log_errors')}: switch.log_errors is not a regular "
                          f"expression: {exc}", "e.g. log_errors = \"Traceback|ERROR\"") from None
    names: set[str] = set()
    for i, entry in enumerate(config.analysis, 1):
        where = f"{at('analysis')}: [[analysis]] entry {i}" + (f" ({entry.name})" if entry.name else "")
        for key in ("name", "prometheus", "query"):
            if not getattr(entry, key):
                raise ConfigError(f"{where} has no {key}", "each entry needs name, prometheus and "
                                  "query; see docs/monitoring.md")
        if entry.name in names:
            raise ConfigError(f"{where}: another entry is called {entry.name!r} too",
                              "give each its own name: it names the check in the reports")
        names.add(entry.name)
        if not entry.prometheus.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: prometheus = {entry.prometheus!r} must be an http(s):// "
                              "URL", "e.g. http://prometheus:9090")
        if entry.interval <= 0 or entry.count < 1:
            raise ConfigError(f"{where}: interval must be greater than 0 and count at least 1, "
                              f"got interval = {entry.interval}, count = {entry.count}")
        if math.isinf(entry.max) and math.isinf(entry.min):
            raise ConfigError(f"{where} has neither max nor min: it could never fail",
                              "set max (each value at most) or min (each value at least)")
    if config.analysis and config.switch.bake <= 0:
        raise ConfigError(f"{at('analysis')}: [[analysis]] is measured during the bake, and "
                          f"switch.bake = {config.switch.bake:g} turns it off",
                          "set switch.bake to the seconds to watch (the bake lasts as long as "
                          "the analyses need: interval x count)")


def _get(config: Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _choice(config: Config, key: str, value: str) -> None:
    *parents, leaf = key.split(".")
    owner: Any = config
    for part in parents:
        owner = getattr(owner, part)
    choices = next(f for f in dataclasses.fields(owner) if f.name == leaf).metadata["choices"]
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
        raise ConfigError(
            f"{config.origin(key)}: {key} = {value!r} is not supported"
            f"{f'; did you mean {close[0]!r}?' if close else ''} (supported: {', '.join(choices)})"
        )


def _address(origin: str, key: str, value: str) -> None:
    match = _ADDR_RE.match(value)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise ConfigError(f"{origin}: {key} = {value!r} must be host:port, e.g. 127.0.0.1:8080")
