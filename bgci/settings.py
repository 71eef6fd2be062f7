"""The configuration schema: every key of ``bgci.toml`` (or ``[tool.bgci]``) as a typed field.

A leaf: adapters read their settings from these dataclasses without knowing how they were loaded
(``bgci.config`` loads, merges and validates them). ``meta(...)`` carries each key's meaning, so
the reference docs are generated from this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgci.stages import FAILURE_STAGES


def meta(doc: str, choices: tuple[str, ...] = (), kinds: str = "") -> dict[str, Any]:
    """A key's documentation; ``choices`` its valid values, or ``kinds`` the registry that knows
    them ("platform", "router": ``bgci.registry``, which knows every adapter)."""
    return {"doc": doc, "choices": choices, "kinds": kinds}


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
    kind: str = field(default="docker", metadata=meta("where colours run", kinds="platform"))
    port: int = field(default=8000, metadata=meta("port the app listens on in its container"))
    env: dict[str, str] = field(default_factory=dict, metadata=meta("extra app environment"))
    command: str = field(default="", metadata=meta("process platform: command with {port}"))
    replicas: int = field(default=1, metadata=meta("swarm: tasks per colour"))
    volumes: dict[str, str] = field(default_factory=dict, metadata=meta(
        "docker: mounted in every colour and in run_in = \"green\" hooks, { source = \"/path/in/"
        "container\" }: a name is the engine volume <app>-<name> (created, kept), an absolute path a "
        "directory of the engine's host; what both colours share, e.g. a SQLite file"))
    state_dir: str = field(default="~/.local/state/bgci", metadata=meta(
        "process platform: where releases, colours, the local router and the state live "
        "(relative to the config file's directory)"))
    hosts: dict[str, str] = field(default_factory=dict, metadata=meta(
        "process platform: the IP address each colour listens on, e.g. { blue = \"10.0.0.11\", "
        "green = \"10.0.0.12\" }, both on platform.port ({host} in platform.command); needed by "
        "router.kind = \"dns\" (a DNS record names an address, not a port). Empty: 127.0.0.1 "
        "and a free port per start"))
    fleet: list[str] = field(default_factory=list, metadata=meta(
        "docker: the Docker hosts of a fleet, e.g. [\"ssh://deploy@app-1\", \"ssh://deploy@app-2\"]: "
        "every stage but build runs on each host in parallel (its own router, state and lock), "
        "under a fleet lock on the first host; a switch that fails on any host is rolled back on "
        "all (docs/fleet.md). Empty: the one engine of DOCKER_HOST"))


TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224")


@dataclass
class RouterConfig:
    kind: str = field(default="haproxy", metadata=meta("the router", kinds="router"))
    listen: str = field(default="127.0.0.1:8080", metadata=meta("live address host:port"))
    preview: str = field(default="127.0.0.1:8081", metadata=meta("idle-colour address host:port"))
    managed: bool = field(default=True, metadata=meta("bgci starts and owns the router"))
    image: str = field(default="", metadata=meta("managed router image on docker"))
    # managed = false: where bgci finds a router the user runs (only the keys router.kind declares:
    # its module's KIND.attach); relative paths start in the config file's directory
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
    # router.kind = "dns": bgci changes two records on your authoritative server (RFC 2136)
    dns_server: str = field(default="", metadata=meta(
        "dns: host:port of the authoritative (primary) server that takes dynamic updates "
        "(port 53 when left out)"))
    dns_zone: str = field(default="", metadata=meta("dns: the zone the two names are in"))
    dns_live_name: str = field(default="", metadata=meta(
        "dns: the name clients use (e.g. www.example.com): points at the live colour"))
    dns_preview_name: str = field(default="", metadata=meta(
        "dns: the name verify uses: points at the idle colour"))
    dns_ttl: int = field(default=60, metadata=meta(
        "dns: the records' TTL, seconds; switch and rollback wait it out before they call the "
        "cut-over done"))
    dns_key_name: str = field(default="", metadata=meta("dns: the TSIG key's name"))
    dns_key_algorithm: str = field(default="hmac-sha256", metadata=meta(
        "dns: the TSIG key's algorithm", TSIG_ALGORITHMS))
    dns_key_secret_env: str = field(default="", metadata=meta(
        "dns: the environment variable that holds the TSIG key's secret (base64, as "
        "tsig-keygen prints it); the secret itself never goes into the config"))


@dataclass
class HealthConfig:
    path: str = field(default="/healthz", metadata=meta("health endpoint path"))
    status: int = field(default=200, metadata=meta("expected HTTP status"))
    contains: str = field(default="", metadata=meta("substring the body must contain"))
    host: str = field(default="", metadata=meta("Host header to send"))
    timeout: float = field(default=2.0, metadata=meta("per request, seconds"))
    interval: float = field(default=0.5, metadata=meta(
        "seconds between probes of a colour that is starting; verify, switch and an instant "
        "rollback probe a release an earlier stage saw healthy back to back (one fresh set), "
        "at this interval again after a failure"))
    deadline: float = field(default=60.0, metadata=meta("give up after, seconds"))
    successes: int = field(default=3, metadata=meta(
        "consecutive successes required; a colour just started on docker or Swarm (HAProxy finds "
        "it by DNS) must also answer in a row for 3 s"))


@dataclass
class VerifyConfig:
    smoke: str = field(default="", metadata=meta(
        "pytest path, run with bgci's own interpreter and BGCI_TARGET_URL set"))
    smoke_command: str = field(default="", metadata=meta(
        "instead of smoke: the project's own command on the runner (e.g. \"tox -e smoke\"), with "
        "BGCI_TARGET_URL set; the JUnit XML it writes to $BGCI_SMOKE_JUNIT becomes the checks, a "
        "non-zero exit fails verify"))
    p95_ms: float = field(default=0.0, metadata=meta("latency budget; 0 = off"))
    against_blue: bool = field(default=False, metadata=meta(
        "switch: right after the pre_switch hook (the migration) and before traffic moves, run the "
        "smoke suite against the live colour and again against the new one; a failure = exit 1, "
        "no switch"))


# Python tracebacks and logging records at ERROR or CRITICAL (also gunicorn's "[ERROR]")
LOG_ERRORS = r"Traceback \(most recent call last\)|\b(ERROR|CRITICAL)\b"


@dataclass
class SwitchConfig:
    drain: float = field(default=10.0, metadata=meta("seconds for in-flight requests to finish"))
    bake: float = field(default=0.0, metadata=meta("seconds to watch live traffic; 0 = off"))
    max_error_rate: float = field(default=0.0, metadata=meta(
        "bake: the fraction of failed requests that rolls back: real requests as the router "
        "counted them (5xx answers), and bgci's own probes"))
    max_p95_ms: float = field(default=0.0, metadata=meta(
        "bake: the 95th percentile response time (ms) of the new colour's real requests above "
        "which it rolls back (bgci's probes where the router keeps no histogram); 0 = off"))
    max_p95_increase: float = field(default=0.0, metadata=meta(
        "bake: how much slower than the old colour just before the switch the new colour may "
        "be, as a fraction (0.5 = its p95 up to 50% higher) before it rolls back; 0 = off"))
    log_errors: str = field(default=LOG_ERRORS, metadata=meta(
        "bake: a regular expression for the new colour's output lines that count as errors; "
        "\"\" = do not watch the output"))
    max_log_errors: int = field(default=-1, metadata=meta(
        "bake: more matching lines than this in a minute roll back (0: any one); -1 = count "
        "and report them only"))
    retire_after: float = field(default=600.0, metadata=meta("scale-down delay for retire"))
    confirm_requests: int = field(default=20, metadata=meta("requests that must reach new colour"))


@dataclass
class HookConfig:
    command: str = field(default="", metadata=meta("the hook command"))
    run_in: str = field(default="runner", metadata=meta("where it runs", ("runner", "green")))
    timeout: float = field(default=300.0, metadata=meta("seconds"))


HOOK_NAMES = ("pre_deploy", "post_deploy", "pre_switch", "post_switch", "post_rollback")


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
class AnalysisConfig:
    """One ``[[analysis]]`` entry: a PromQL query asked during the bake (bgci.analysis)."""

    name: str = field(default="", metadata=meta("required: names the check in the reports"))
    prometheus: str = field(default="", metadata=meta(
        "required: the Prometheus server's URL, e.g. http://prometheus:9090"))
    query: str = field(default="", metadata=meta(
        "required: PromQL giving one number; {{app}}, {{colour}}, {{digest}} are put in"))
    interval: float = field(default=10.0, metadata=meta("seconds between two measurements"))
    count: int = field(default=3, metadata=meta("measurements taken; the bake lasts long enough"))
    max: float = field(default=math.inf, metadata=meta("each value must be at most this"))
    min: float = field(default=-math.inf, metadata=meta("each value must be at least this"))


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
    analysis: list[AnalysisConfig] = field(default_factory=list, metadata=meta(
        "[[analysis]]: Prometheus queries the bake holds the new colour to"))
    source: str = field(default="(defaults)", metadata=meta("where the config came from"))
    # dotted key -> where its value came from: "path:line", "environment variable BGCI_...",
    # "--set key"; keys left at their default are absent
    origins: dict[str, str] = field(default_factory=dict, metadata=meta("each value's origin"))
    root: Path = field(default_factory=Path.cwd, metadata=meta("directory relative paths start in"))

    @property
    def image_repo(self) -> str:
        return self.build.image or self.app

    def origin(self, key: str) -> str:
        """Where ``key``'s value came from, as an error message starts: ``bgci.toml:12``, the
        environment variable's name, ``--set key``, or the config file for a default."""
        return self.origins.get(key) or self.origins.get(key.rpartition(".")[0]) or self.source


# Fields that are bookkeeping, not configuration keys.
INTERNAL = frozenset({"source", "root", "origins"})


def split_address(value: str) -> tuple[str, int]:
    """``host:port`` into its parts (brackets of IPv6 hosts removed)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)
