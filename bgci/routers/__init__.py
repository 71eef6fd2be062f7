"""Routers: what sends live and preview traffic to a colour. One module each behind ``Router``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bgci.config import Config
    from bgci.log import Log
    from bgci.model import Colour
    from bgci.platforms import Platform


@dataclass(frozen=True)
class RouterSpec:
    """How to run a managed router: image/binary, command, and which ports it must publish."""

    name: str
    image: str
    command: list[str]
    ports: Mapping[int, tuple[str, int]]  # port inside -> (host ip, host port)
    labels: Mapping[str, str] = field(default_factory=dict)


def router_url(host: str, port: int, public: str) -> str:
    """The URL of a router address; a wildcard host (``0.0.0.0``, ``::``) becomes ``public``."""
    if host in ("", "0.0.0.0", "::"):
        host = public
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RouterHost(Protocol):
    """Where a managed router process lives (a container on the engine, or a local process)."""

    local: bool  # the router runs on this machine: its files and sockets are reachable directly

    def path(self, name: str) -> str:
        """Absolute path of the router's file ``name`` (relative), as the router process sees it."""

    def bind(self, spec: RouterSpec, inner: int) -> str:
        """``host:port`` the router binds for its port ``inner`` (``:inner`` in a container)."""

    def running(self, spec: RouterSpec) -> bool: ...

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        """(Re)create and start the router with ``files`` (absolute path -> content) in place."""

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        """Replace files the router reads, each in one rename (a watcher never sees half a file)."""

    def read(self, spec: RouterSpec, path: str) -> bytes | None: ...

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        """Run ``argv`` beside the router (inside its container); exit code and output."""

    def label(self, spec: RouterSpec, key: str) -> str | None:
        """A label of the running router (its config fingerprint)."""

    def stop(self, spec: RouterSpec, log: Log) -> None:
        """Stop the router; its files stay, so the next start keeps the live colour."""


def dns_names(host: RouterHost) -> dict[Colour, str]:
    """colour -> ``name:port`` that a router on ``host`` resolves by itself, continuously, to reach
    that colour's instances (the swarm host: DNS round-robin over a service's tasks). Empty where
    each colour has one fixed address, given through ``Router.set_backend``. An optional
    ``dns_names`` attribute of the host: hosts without it need not know it exists."""
    names = getattr(host, "dns_names", None)
    return {c: str(n) for c, n in names.items()} if isinstance(names, Mapping) else {}


class Router(Protocol):
    """Live and preview traffic for one app."""

    live_url: str
    preview_url: str

    def ensure(self, backends: Mapping[Colour, str], log: Log) -> None:
        """Start the router if needed, and make each colour's server address match ``backends``."""

    def live(self) -> Colour | None:
        """The colour live traffic goes to, read from the router itself (None: nothing yet)."""

    def set_backend(self, colour: Colour, address: str | None) -> None:
        """Point ``colour``'s server at ``host:port`` (None: no server, 503)."""

    def switch(self, live: Colour) -> None:
        """Atomically send live traffic to ``live`` and preview traffic to the other colour."""

    def inflight(self, colour: Colour) -> int:
        """Requests/connections the router has open to ``colour`` now (for draining)."""

    def describe_switch(self, live: Colour) -> str:
        """What ``switch(live)`` would change, for --dry-run: the config diff or the runtime
        commands (and ``nginx -t`` of the new config); changes nothing."""

    def disconnect(self, colour: Colour) -> str:
        """Close what is still open to ``colour`` (streams, WebSockets) once switch.drain is over,
        as far as the router allows; says what was (or will be) closed and by whom."""

    def stop(self, log: Log) -> None:
        """Stop a managed router (for `bgci down`); the live colour is kept for its next start."""


def make_router(config: Config, platform: Platform) -> Router:
    if config.router.kind == "haproxy" and not config.router.managed:
        from bgci.routers.haproxy_attached import AttachedHAProxyRouter

        return AttachedHAProxyRouter(config, platform)
    if config.router.kind == "haproxy":
        from bgci.routers.haproxy import HAProxyRouter

        return HAProxyRouter(config, platform)
    if config.router.kind == "traefik" and not config.router.managed:
        from bgci.routers.traefik_attached import AttachedTraefikRouter

        return AttachedTraefikRouter(config, platform)
    if config.router.kind == "traefik":
        from bgci.routers.traefik import TraefikRouter

        return TraefikRouter(config, platform)
    if config.router.kind == "nginx":
        from bgci.routers.nginx import NginxRouter

        return NginxRouter(config, platform)
    if config.router.kind == "caddy":
        from bgci.routers.caddy import CaddyRouter

        return CaddyRouter(config, platform)
    raise AssertionError(f"unvalidated router.kind {config.router.kind!r}")
