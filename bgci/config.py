"""The configuration schema (``bgci.toml`` or ``[tool.bgci]``), its loader and its validation.

Every key is a dataclass field; ``meta(...)`` carries its meaning so the reference docs can be
generated from this file. Precedence: command line (``--set``) > environment (``BGCI_<SECTION>_<KEY>``)
> config file > defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from bgci.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def meta(doc: str, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"doc": doc, "choices": choices}


@dataclass
class BuildConfig:
    context: str = field(default=".", metadata=meta("build context directory"))
    dockerfile: str = field(default="Dockerfile", metadata=meta("Dockerfile, relative to context"))
    build_args: dict[str, str] = field(default_factory=dict, metadata=meta("docker build args"))
    test_command: str = field(default="", metadata=meta("run before the build; failure = exit 1"))
    image: str = field(default="", metadata=meta("image repository; default: the app name"))
    push: bool = field(default=False, metadata=meta("push the image after the build"))


@dataclass
class PlatformConfig:
    kind: str = field(default="docker", metadata=meta("where colours run",
                                                      ("docker", "process", "swarm")))
    port: int = field(default=8000, metadata=meta("port the app listens on in its container"))
    env: dict[str, str] = field(default_factory=dict, metadata=meta("extra app environment"))
    command: str = field(default="", metadata=meta("process platform: command with {port}"))
    replicas: int = field(default=1, metadata=meta("swarm: tasks per colour"))
    state_dir: str = field(default="~/.local/state/bgci", metadata=meta(
        "process platform: where releases, colours, the local router and the state live "
        "(relative to the config file's directory)"))


@dataclass
class RouterConfig:
    kind: str = field(default="haproxy", metadata=meta(
        "the router", ("haproxy", "traefik", "nginx", "caddy")))
    listen: str = field(default="127.0.0.1:8080", metadata=meta("live address host:port"))
    preview: str = field(default="127.0.0.1:8081", metadata=meta("idle-colour address host:port"))
    managed: bool = field(default=True, metadata=meta("bgci starts and owns the router"))
    image: str = field(default="", metadata=meta("managed router image on docker"))
    # managed = false: where bgci finds a router the user runs (only the keys of router.kind; see
    # ROUTER_ATTACH_KEYS); relative paths start in the config file's directory
    admin_socket: str = field(default="", metadata=meta(
        "haproxy, managed = false: HAProxy's runtime API at admin level: a unix socket path, or "
        "host:port of a TCP stats socket"))
    map_file: str = field(default="", metadata=meta(
        "haproxy, managed = false: the map file your use_backend rule reads, as haproxy.cfg names "
        "it; bgci sets it at runtime and rewrites the file"))
    config_dir: str = field(default="", metadata=meta(
        "traefik, managed = false: the directory Traefik's file provider watches; bgci writes only "
        "bgci-<app>.yml there"))
    admin_url: str = field(default="", metadata=meta(
        "traefik / caddy, managed = false: Traefik's API (e.g. http://127.0.0.1:8080) or Caddy's "
        "admin API (http://127.0.0.1:2019 or unix//path/to/admin.sock)"))
    include_file: str = field(default="", metadata=meta(
        "nginx, managed = false: the file bgci owns, included in your nginx.conf's http {} block"))
    reload_command: str = field(default="", metadata=meta(
        "nginx, managed = false: graceful reload (default: nginx -s reload)"))
    check_command: str = field(default="", metadata=meta(
        "nginx, managed = false: config test run before every reload (default: nginx -t)"))
    client_keepalive: bool = field(default=True, metadata=meta(
        "nginx: keep idle client connections open between requests; false = one request per "
        "connection, so that a reload closes no connection under a client (docs/routers.md)"))


@dataclass
class HealthConfig:
    path: str = field(default="/healthz", metadata=meta("health endpoint path"))
    status: int = field(default=200, metadata=meta("expected HTTP status"))
    contains: str = field(default="", metadata=meta("substring the body must contain"))
    host: str = field(default="", metadata=meta("Host header to send"))
    timeout: float = field(default=2.0, metadata=meta("per request, seconds"))
    interval: float = field(default=0.5, metadata=meta("seconds between probes"))
    deadline: float = field(default=60.0, metadata=meta("give up after, seconds"))
    successes: int = field(default=3, metadata=meta("consecutive successes required"))


@dataclass
class VerifyConfig:
    smoke: str = field(default="", metadata=meta("pytest path run with BGCI_TARGET_URL"))
    p95_ms: float = field(default=0.0, metadata=meta("latency budget; 0 = off"))
    against_blue: bool = field(default=False, metadata=meta(
        "switch: right after the pre_switch hook (the migration) and before traffic moves, run the "
        "smoke suite against the live colour and again against the new one; a failure = exit 1, "
        "no switch"))


@dataclass
class SwitchConfig:
    drain: float = field(default=10.0, metadata=meta("seconds for in-flight requests to finish"))
    bake: float = field(default=0.0, metadata=meta("seconds to watch live traffic; 0 = off"))
    max_error_rate: float = field(default=0.0, metadata=meta("bake: failure fraction to roll back"))
    retire_after: float = field(default=600.0, metadata=meta("scale-down delay for retire"))
    confirm_requests: int = field(default=20, metadata=meta("requests that must reach new colour"))


@dataclass
class HookConfig:
    command: str = field(default="", metadata=meta("the hook command"))
    run_in: str = field(default="runner", metadata=meta("where it runs", ("runner", "green")))
    timeout: float = field(default=300.0, metadata=meta("seconds"))


HOOK_NAMES = ("pre_deploy", "post_deploy", "pre_switch", "post_switch", "post_rollback")
# The stages hooks.on_failure may run after (status and lock only read, so never "fail").
FAILURE_STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "retire", "down")


@dataclass
class FailureHookConfig:
    command: str = field(default="", metadata=meta(
        "run on the runner after a stage fails (exit 1, 3 or 4); BGCI_STAGE, BGCI_OUTCOME, "
        "BGCI_EXIT_CODE and BGCI_MESSAGE say which and why"))
    run_in: str = field(default="runner", metadata=meta(
        "always the runner: a failed stage's release may not be runnable", ("runner",)))
    timeout: float = field(default=300.0, metadata=meta("seconds"))
    stages: str = field(default="", metadata=meta(
        "comma-separated stages it runs for, e.g. \"switch,rollback\"; empty = all of "
        + ", ".join(FAILURE_STAGES)))

    @property
    def stage_list(self) -> tuple[str, ...]:
        """The stages this hook runs after (all of FAILURE_STAGES when ``stages`` is empty)."""
        named = tuple(s.strip() for s in self.stages.split(",") if s.strip())
        return named or FAILURE_STAGES


@dataclass
class HooksConfig:
    pre_deploy: HookConfig = field(default_factory=HookConfig, metadata=meta("before green starts"))
    post_deploy: HookConfig = field(default_factory=HookConfig, metadata=meta("after green healthy"))
    pre_switch: HookConfig = field(default_factory=HookConfig, metadata=meta("before traffic moves"))
    post_switch: HookConfig = field(default_factory=HookConfig, metadata=meta("after the switch"))
    post_rollback: HookConfig = field(default_factory=HookConfig, metadata=meta("after rollback"))
    on_failure: FailureHookConfig = field(default_factory=FailureHookConfig,
                                          metadata=meta("after any stage fails"))


@dataclass
class NotifyConfig:
    url: str = field(default="", metadata=meta("webhook for stage outcomes"))


@dataclass
class LockConfig:
    ttl: float = field(default=900.0, metadata=meta("a lock older than this is stale"))


@dataclass
class ReportsConfig:
    dir: str = field(default="bgci-reports", metadata=meta("reports directory"))


@dataclass
class Config:
    app: str = field(default="", metadata=meta("required; [a-z0-9-]; names everything"))
    build: BuildConfig = field(default_factory=BuildConfig, metadata=meta("[build]"))
    platform: PlatformConfig = field(default_factory=PlatformConfig, metadata=meta("[platform]"))
    router: RouterConfig = field(default_factory=RouterConfig, metadata=meta("[router]"))
    health: HealthConfig = field(default_factory=HealthConfig, metadata=meta("[health]"))
    verify: VerifyConfig = field(default_factory=VerifyConfig, metadata=meta("[verify]"))
    switch: SwitchConfig = field(default_factory=SwitchConfig, metadata=meta("[switch]"))
    hooks: HooksConfig = field(default_factory=HooksConfig, metadata=meta("[hooks.*]"))
    notify: NotifyConfig = field(default_factory=NotifyConfig, metadata=meta("[notify]"))
    lock: LockConfig = field(default_factory=LockConfig, metadata=meta("[lock]"))
    reports: ReportsConfig = field(default_factory=ReportsConfig, metadata=meta("[reports]"))
    source: str = field(default="(defaults)", metadata=meta("where the config came from"))
    root: Path = field(default_factory=Path.cwd, metadata=meta("directory relative paths start in"))

    @property
    def image_repo(self) -> str:
        return self.build.image or self.app


# Fields that are bookkeeping, not configuration keys.
_INTERNAL = {"source", "root"}
_APP_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
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
    """Load, merge and validate the configuration. Raises ConfigError (exit 2) on any problem."""
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    path, data = find_config(explicit, cwd)
    source = str(path) if path else "(no config file)"
    merged = _deep_copy(data)
    for key, raw in _env_overrides(environ):
        _assign(merged, key, raw, f"environment variable {_env_name(key)}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. router.listen=:8080")
        key, raw = item.split("=", 1)
        _assign(merged, key.strip(), raw, f"--set {key.strip()}")
    config: Config = _build(Config, merged, source, "")
    config.source = source
    config.root = path.parent if path else cwd
    _check_values(config)
    return config


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _env_name(key: str) -> str:
    return "BGCI_" + key.replace(".", "_").upper()


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``BGCI_<SECTION>_<KEY>`` for every scalar key in the schema (hooks: BGCI_HOOKS_<HOOK>_<KEY>)."""
    found = []
    for key in scalar_keys():
        name = _env_name(key)
        if name in environ:
            found.append((key, environ[name]))
    return found


def scalar_keys(cls: type[Any] = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema whose value is not a table of its own."""
    keys: list[str] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in _INTERNAL:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            keys.extend(scalar_keys(typ, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            keys.append(prefix + f.name)
    return keys


def _assign(data: dict[str, Any], dotted: str, raw: str, origin: str) -> None:
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


def _build(cls: type[Any], data: Any, source: str, prefix: str) -> Any:
    where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where} must be a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _INTERNAL]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{source}: unknown key {prefix + key!r} in {where}{_suggest(key, names)}"
            )
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in data:
            continue
        typ, value, key = hints[name], data[name], prefix + name
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, source, key + ".")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(typ, value, source, key)
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
    return float(value) if typ is float else value


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_values(config: Config) -> None:
    src = config.source
    if not config.app:
        raise ConfigError(f"{src}: app is required (e.g. app = \"shop\")", "add it to bgci.toml")
    if not _APP_RE.match(config.app):
        raise ConfigError(
            f"{src}: app = {config.app!r} must be 1-40 of [a-z0-9-], not starting or ending with -"
        )
    _choice(config, "platform.kind", config.platform.kind)
    _choice(config, "router.kind", config.router.kind)
    _check_router(config)
    for name in HOOK_NAMES:
        _choice(config, f"hooks.{name}.run_in", getattr(config.hooks, name).run_in)
    _choice(config, "hooks.on_failure.run_in", config.hooks.on_failure.run_in)
    for stage in config.hooks.on_failure.stage_list:
        if stage not in FAILURE_STAGES:
            raise ConfigError(f"{src}: hooks.on_failure.stages names {stage!r}, not a stage"
                              f"{_suggest(stage, list(FAILURE_STAGES))}"
                              f" (stages: {', '.join(FAILURE_STAGES)})")
    if config.verify.against_blue and not config.verify.smoke:
        raise ConfigError(f"{src}: verify.against_blue = true needs verify.smoke (the suite to run)",
                          "set verify.smoke to your pytest smoke suite, e.g. smoke = \"smoke\"")
    for key in ("router.listen", "router.preview"):
        _address(src, key, _get(config, key))
    if config.router.listen == config.router.preview:
        raise ConfigError(f"{src}: router.listen and router.preview must differ")
    if not config.health.path.startswith("/"):
        raise ConfigError(f"{src}: health.path must start with /, got {config.health.path!r}")
    positive = ["platform.port", "platform.replicas", "health.timeout", "health.interval",
                "health.deadline", "health.successes", "switch.confirm_requests", "lock.ttl",
                *(f"hooks.{name}.timeout" for name in (*HOOK_NAMES, "on_failure"))]
    for key in positive:
        if _get(config, key) <= 0:
            raise ConfigError(f"{src}: {key} must be greater than 0, got {_get(config, key)}")
    for key in ("verify.p95_ms", "switch.drain", "switch.bake", "switch.retire_after"):
        if _get(config, key) < 0:
            raise ConfigError(f"{src}: {key} must be 0 or more, got {_get(config, key)}")
    if not 0 <= config.switch.max_error_rate <= 1:
        raise ConfigError(f"{src}: switch.max_error_rate must be between 0 and 1")
    if not 100 <= config.health.status <= 599:
        raise ConfigError(f"{src}: health.status must be an HTTP status code, got {config.health.status}")
    if not 1 <= config.platform.port <= 65535:
        raise ConfigError(f"{src}: platform.port must be 1-65535, got {config.platform.port}")


# router.managed = false: the keys that attach bgci to each kind of router (required, optional)
ROUTER_ATTACH_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "haproxy": (("admin_socket", "map_file"), ()),
    "traefik": (("config_dir", "admin_url"), ()),
    "nginx": (("include_file",), ("reload_command", "check_command")),
    "caddy": (("admin_url",), ()),
}
# why router.client_keepalive is for nginx only (measured: docs/routers.md)
_KEEPALIVE_NOT_FOR = {
    "haproxy": "HAProxy switches without a reload and closes no connection",
    "traefik": "Traefik switches without a reload and closes no connection",
    "caddy": "Caddy replaces its listening sockets at every change, so new connections are "
             "reset as well: turning keep-alive off does not help",
}


def _check_router(config: Config) -> None:
    """The attach keys of router.kind when managed = false, and no key another kind uses."""
    src, router = config.source, config.router
    required, optional = ROUTER_ATTACH_KEYS[router.kind]
    allowed = set() if router.managed else {*required, *optional}
    mode = "managed = true" if router.managed else "managed = false"
    for key in sorted({k for keys in ROUTER_ATTACH_KEYS.values() for k in (*keys[0], *keys[1])}):
        if getattr(router, key) and key not in allowed:
            users = [kind for kind, keys in ROUTER_ATTACH_KEYS.items() if key in (*keys[0], *keys[1])]
            raise ConfigError(
                f"{src}: router.{key} is not used with router.kind = {router.kind!r} and {mode}: "
                f"it attaches bgci to a router you run ({' or '.join(users)}, managed = false)",
                f"remove router.{key}" + (f"; with {mode} {router.kind} reads: "
                                           f"{', '.join('router.' + k for k in sorted(allowed))}"
                                           if allowed else ""))
    if not router.managed:
        for key in required:
            if not getattr(router, key):
                raise ConfigError(
                    f"{src}: router.{key} is required with router.kind = {router.kind!r} and "
                    "managed = false (bgci attaches to the router you run through it)",
                    f"set router.{key}; see docs/routers.md")
    if not router.client_keepalive and router.kind in _KEEPALIVE_NOT_FOR:
        raise ConfigError(f"{src}: router.client_keepalive is only for router.kind = \"nginx\": "
                          f"{_KEEPALIVE_NOT_FOR[router.kind]}", "remove it")
    if router.kind == "caddy" and router.admin_url:
        _url_or_socket(src, "router.admin_url", router.admin_url, unix=True)
    if router.kind == "traefik" and router.admin_url:
        _url_or_socket(src, "router.admin_url", router.admin_url, unix=False)


def _url_or_socket(source: str, key: str, value: str, *, unix: bool) -> None:
    if value.startswith("http://") or (unix and value.startswith("unix/")):
        return
    raise ConfigError(f"{source}: {key} = {value!r} must be an http:// URL"
                      + (" or unix//path/to/admin.sock" if unix else ""),
                      "e.g. http://127.0.0.1:2019")


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
        raise ConfigError(
            f"{config.source}: {key} = {value!r} is not supported{_suggest(value, list(choices))}"
            f" (supported: {', '.join(choices)})"
        )


def _address(source: str, key: str, value: str) -> None:
    match = _ADDR_RE.match(value)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise ConfigError(f"{source}: {key} = {value!r} must be host:port, e.g. 127.0.0.1:8080")


def split_address(value: str) -> tuple[str, int]:
    """``host:port`` into its parts (brackets of IPv6 hosts removed)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)

