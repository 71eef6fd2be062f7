"""The composition root: the one place that knows every adapter, and how they fit together.

``PLATFORMS`` maps ``platform.kind`` to the wiring of that platform (its ``Platform``, the
``StateStore`` beside it and the host its managed router runs on), ``ROUTERS`` maps
``router.kind`` to the router module's ``KIND``, and ``CI`` is the CI adapters in detection order.
The valid kinds in the configuration are these dicts' keys. Platform modules are imported only
when their platform is built: the docker SDK stays out of a process-platform run.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bgci.ci import ADAPTERS as CI
from bgci.errors import ConfigError
from bgci.fleet import check_hosts
from bgci.hosts.user import UserHost
from bgci.model import COLOURS
from bgci.ports import Platform, Router, RouterHost, RouterKind, StateStore
from bgci.routers import caddy, dns, endpoints, haproxy, nginx, traefik
from bgci.settings import Config

__all__ = ["CI", "PLATFORMS", "ROUTERS", "Site", "check", "make_router", "open_site"]


@dataclass
class Site:
    """Everything bgci drives on one deployment target, for one app."""

    platform: Platform
    store: StateStore
    router_host: Callable[[], RouterHost]  # where a managed router runs (made on first use)
    public_host: Callable[[], str]  # the host name a router's wildcard address is reached by
    close: Callable[[], None] = field(default=lambda: None)


def _docker(config: Config) -> Site:
    from bgci import docker_engine
    from bgci.hosts.docker import DockerRouterHost
    from bgci.platforms.docker import DockerPlatform
    from bgci.state.docker import DockerStore

    client = docker_engine.connect()
    platform = DockerPlatform(config, client)
    # HAProxy resolves each colour by its container's name: addresses change when the engine
    # restarts, names do not
    names = {c: f"{config.app}-{c}:{config.platform.port}" for c in COLOURS}
    return Site(platform, DockerStore(client, config.app),
                router_host=lambda: DockerRouterHost(client, platform.network, config.app, names),
                public_host=docker_engine.public_host, close=client.close)


def _swarm(config: Config) -> Site:
    from bgci import docker_engine
    from bgci.hosts.swarm import SwarmRouterHost
    from bgci.platforms.swarm import SwarmPlatform
    from bgci.state.swarm import SwarmStore
    from bgci.swarm_engine import manager_node

    client = docker_engine.connect()
    node = manager_node(client)
    platform = SwarmPlatform(config, client)
    names = {c: f"{config.app}-{c}:{config.platform.port}" for c in COLOURS}
    host = SwarmRouterHost(client, node, platform.network, config.app, names,
                           fallback_public=docker_engine.public_host())

    def close() -> None:
        host.close()
        client.close()

    return Site(platform, SwarmStore(client, config.app), router_host=lambda: host,
                public_host=host.public_host, close=close)


def _process(config: Config) -> Site:
    from bgci.hosts.local import LocalRouterHost
    from bgci.platforms.process import ProcessPlatform, state_root
    from bgci.state.files import FileStore

    root = state_root(config) / config.app
    return Site(ProcessPlatform(config), FileStore(root, config.app),
                router_host=lambda: LocalRouterHost(root / "router"),
                public_host=lambda: "127.0.0.1")


PLATFORMS: dict[str, Callable[[Config], Site]] = {
    "docker": _docker,
    "process": _process,
    "swarm": _swarm,
}
ROUTERS: dict[str, RouterKind] = {kind.name: kind for kind in
                                  (haproxy.KIND, traefik.KIND, nginx.KIND, caddy.KIND,
                                   dns.KIND)}


def open_site(config: Config) -> Site:
    """The adapters of ``platform.kind`` for this app (the engine is reached here: exit 3 if not)."""
    return PLATFORMS[config.platform.kind](config)


def make_router(config: Config, site: Site) -> Router:
    """The ``router.kind`` router of this app: on the site's router host, or attached to the
    user's router (``router.managed = false``)."""
    host: RouterHost = site.router_host() if config.router.managed else UserHost(config.root)
    return ROUTERS[config.router.kind].make(config, host, endpoints(config, site.public_host()))


# -- what the configuration may say --------------------------------------------------------------
def check(config: Config) -> None:
    """The kinds a config names exist, its router keys fit its router, and platform.hosts fits
    its platform (ConfigError, exit 2)."""
    _kind(config, "platform.kind", config.platform.kind, list(PLATFORMS))
    _volumes(config)
    _kind(config, "router.kind", config.router.kind, list(ROUTERS))
    kind = ROUTERS[config.router.kind]
    if config.router.managed and not kind.manageable:
        raise ConfigError(
            f"{config.origin('router.managed')}: router.kind = {kind.name!r} attaches bgci to a "
            f"server you run: bgci never starts one, so router.managed must be false",
            f"set router.managed = false and the router.{kind.attach[0]} ... keys (docs/routers.md)")
    _attach_keys(config, kind)
    kind.check(config)
    _hosts(config)
    _fleet(config)


def _kind(config: Config, key: str, value: str, kinds: list[str]) -> None:
    if value in kinds:
        return
    close = difflib.get_close_matches(value, kinds, n=1, cutoff=0.5)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{config.origin(key)}: {key} = {value!r} is not supported{guess} "
                      f"(supported: {', '.join(kinds)})")


_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _volumes(config: Config) -> None:
    """platform.volumes: docker only; each a volume name or an absolute host path, mounted at an
    absolute path of its own."""
    volumes, at = config.platform.volumes, config.origin("platform.volumes")
    if volumes and config.platform.kind != "docker":
        raise ConfigError(
            f"{at}: platform.volumes is for platform.kind = \"docker\", not "
            f"{config.platform.kind!r}",
            "on the process platform the colours share this machine's files: name an absolute "
            "path in platform.env; on swarm each node would mount a volume of its own: use a "
            "database server")
    targets: dict[str, str] = {}
    for source, target in volumes.items():
        if not (source.startswith("/") or _VOLUME_NAME.match(source)):
            raise ConfigError(f"{at}: platform.volumes source {source!r} must be a volume name "
                              "([A-Za-z0-9_.-]) or an absolute path of the engine's host")
        if not target.startswith("/") or target == "/":
            raise ConfigError(f"{at}: platform.volumes.{source} = {target!r} must be an absolute "
                              "path in the container, e.g. \"/data\"")
        if target in targets:
            raise ConfigError(f"{at}: platform.volumes mounts {targets[target]!r} and {source!r} "
                              f"both at {target}")
        targets[target] = source


def _attach_keys(config: Config, kind: RouterKind) -> None:
    """The attach keys of router.kind when managed = false, and no key another kind uses."""
    router = config.router
    allowed = set() if router.managed else {*kind.attach, *kind.attach_optional}
    mode = "managed = true" if router.managed else "managed = false"
    every = sorted({key for k in ROUTERS.values() for key in (*k.attach, *k.attach_optional)})
    for key in every:
        if getattr(router, key) and key not in allowed:
            users = [k.name for k in ROUTERS.values() if key in (*k.attach, *k.attach_optional)]
            raise ConfigError(
                f"{config.origin('router.' + key)}: router.{key} is not used with router.kind = "
                f"{router.kind!r} and {mode}: it attaches bgci to a router you run "
                f"({' or '.join(users)}, managed = false)",
                f"remove router.{key}" + (f"; with {mode} {router.kind} reads: "
                                           f"{', '.join('router.' + k for k in sorted(allowed))}"
                                           if allowed else ""))
    if not router.managed:
        for key in kind.attach:
            if not getattr(router, key):
                raise ConfigError(
                    f"{config.origin('router.kind')}: router.{key} is required with "
                    f"router.kind = {router.kind!r} and managed = false (bgci attaches to the "
                    "router you run through it)",
                    f"set router.{key}; see docs/routers.md")


def _fleet(config: Config) -> None:
    """platform.fleet: Docker host URLs, each once, on the docker platform, with a router bgci
    runs on each host."""
    fleet, at = config.platform.fleet, config.origin("platform.fleet")
    if not fleet:
        return
    if config.platform.kind != "docker":
        raise ConfigError(f"{at}: platform.fleet is for platform.kind = \"docker\" (one engine "
                          f"per host); {config.platform.kind!r} runs where it runs",
                          "remove platform.fleet (a swarm spreads its tasks over its own nodes)")
    if not config.router.managed:
        raise ConfigError(f"{at}: platform.fleet needs router.managed = true: bgci runs one "
                          "router on each host", "remove router.managed = false")
    check_hosts(fleet, at)


def _hosts(config: Config) -> None:
    """platform.hosts: an IP address of the same family for each colour, two different ones,
    on the process platform, bound by platform.command through {host}."""
    hosts, at = config.platform.hosts, config.origin("platform.hosts")
    if not hosts:
        return
    if config.platform.kind != "process":
        raise ConfigError(f"{at}: platform.hosts is for platform.kind = \"process\" (a colour's "
                          f"own address); with {config.platform.kind!r} each colour's address is "
                          "its container's", "remove platform.hosts")
    wrong = sorted(set(hosts) - set(COLOURS))
    missing = [c for c in COLOURS if c not in hosts]
    if wrong or missing:
        raise ConfigError(f"{at}: platform.hosts names the colours' addresses: blue and green, "
                          f"each once; got {', '.join(sorted(hosts))}",
                          'e.g. hosts = { blue = "10.0.0.11", green = "10.0.0.12" }')
    addresses = []
    for colour in COLOURS:
        try:
            addresses.append(ipaddress.ip_address(hosts[colour]))
        except ValueError:
            raise ConfigError(f"{config.origin(f'platform.hosts.{colour}')}: platform.hosts.{colour} "
                              f"= {hosts[colour]!r} must be an IP address (a DNS record points "
                              "at it)") from None
    if addresses[0] == addresses[1] or addresses[0].version != addresses[1].version:
        raise ConfigError(f"{at}: platform.hosts must give blue and green two different addresses "
                          f"of one family (IPv4 or IPv6), got {hosts['blue']} and {hosts['green']}")
    if "{host}" not in config.platform.command:
        raise ConfigError(f"{config.origin('platform.command')}: platform.command must bind the "
                          "colour's own address, {host}, as platform.hosts gives each colour one "
                          f"(now: {config.platform.command!r})",
                          'e.g. command = "gunicorn app:app -b {host}:{port}"')

