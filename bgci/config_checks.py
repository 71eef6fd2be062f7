"""The configuration's values checked together, once it is typed: what no single key's type
says (an app name, addresses, positive numbers, hooks, the bake and the [[analysis]] entries) and
what the registry knows of the platform and router kinds. A failing check is a ConfigError (exit 2)
that names the file and line, or the variable or flag, the value came from."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Any

from bgci import registry
from bgci.errors import ConfigError
from bgci.settings import HOOK_NAMES, Config
from bgci.stages import FAILURE_STAGES

_APP_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def valid_app(name: str) -> bool:
    """Whether ``name`` may be an ``app``: 1-40 of [a-z0-9-], not starting or ending with -."""
    return bool(_APP_RE.match(name))


_ADDR_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def suggest(word: str, options: list[str]) -> str:
    """"; did you mean 'x'?" for the closest of ``options``, else the list of them."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(options)}"


def check_values(config: Config) -> None:
    """Every rule across keys; the first one broken raises ConfigError."""
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
                              f"{stage!r}, not a stage{suggest(stage, list(FAILURE_STAGES))}"
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
