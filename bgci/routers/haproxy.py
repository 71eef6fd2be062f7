"""HAProxy: switched through its runtime API (a map lookup flips atomically), never reloaded.

Live and preview frontends pick their backend with ``be_%[str(live),map(colour.map)]``; a switch is
one ``set map`` on the runtime API, applied between two requests, so no connection is dropped and
keep-alive clients move with their next request. The map and the server addresses are also written
to the files HAProxy starts from, so a restarted router comes back with the same live colour.

In a container the runtime API listens on the container's loopback, reached through the engine
(``docker exec``), and, where the engine runs on this machine, also on a unix socket (mode 0600)
in a directory of bgci's user (0700) bind-mounted into the container, which runs as that user:
bgci speaks to that one directly, with no engine round trip (a switch's ``set map`` in about a
millisecond), and falls back to the engine when it cannot reach it (a router started before, a
CI job in a container of its own). As a local process (process platform) it is a unix socket
(mode 0600) beside its files, spoken to directly.

HAProxy the user runs (``router.managed = false``): bgci drives its runtime API at
``router.admin_socket`` and owns its map file (``router.map_file``: keys ``live`` and ``preview``)
and two backends, ``bgci-<app>-blue`` and ``bgci-<app>-green``, each with one server ``app``; the
user's haproxy.cfg declares them and routes with them (docs/routers.md has the snippet)::

    use_backend bgci-shop-%[str(live),map(/etc/haproxy/bgci-shop.map,none)]

A switch is the same two ``set map`` commands; bgci then rewrites the map file, so that the user's
next restart or reload keeps the live colour. Nothing else of the user's is written.

Where the router host names each colour by DNS (the swarm platform: a service name that resolves
to its tasks), each colour's backend is a ``server-template`` of DNS_SLOTS servers that HAProxy's
resolver fills from the name's A records every second, with TCP checks: the router follows tasks
that Swarm starts, stops or moves without bgci running. bgci then only puts a colour's servers in
or out of maintenance.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from bgci import sockets
from bgci.atomic import read_or_none, write_atomic
from bgci.errors import ConfigError, InfraError, Refused
from bgci.log import Log
from bgci.model import COLOURS, Colour, other
from bgci.ports import Counters, Endpoints, RouterHost, RouterKind
from bgci.routers import LIVE_PORT, PREVIEW_PORT, RouterBase, router_spec
from bgci.routers.haproxy_stat import backend_stats, number, traffic_of
from bgci.settings import Config, split_address
from bgci.timings import waits_on

DEFAULT_IMAGE = "haproxy:2.8"
DIR = "bgci-haproxy"  # the router's files, under RouterHost.path (/etc/bgci-haproxy in a container)
ADMIN_PORT = 9999  # on the router container's own loopback: reachable only through the engine
# local router: relative to its working directory (the router dir): unix socket paths are limited
# to 107 bytes, and the state dir can be deeper than that
ADMIN_SOCKET = f"{DIR}/admin.sock"
SHARED = f"/run/{DIR}"  # in a container: the directory the host may share (RouterSpec.shared)
TEMPLATE_VERSION = "1"
DNS_SLOTS = 32  # servers per colour resolved by DNS: the most tasks a colour may run unchanged
# on a router whose haproxy.cfg reloads without dropping a connection (expose-fd listeners,
# idle-close-on-response, init-addr libc): bgci 0.1's did not
SEAMLESS = ("org.bgci.reload", "seamless")
RELOAD_TIMEOUT = 15.0
DNS_SETTLE = 3.0  # seconds of health in a row after a start, colours found by DNS (settle_for)
_TEMPLATE_ADDRESS = re.compile(r"^backend be_(blue|green)\n(?:    .*\n)*?    server-template app "
                               r"1-\d+ (\S+) ", re.MULTILINE)

# bash is in the official (Debian-based) image; the command text travels as "$1", never spliced.
_ADMIN = (
    'exec 3<>/dev/tcp/127.0.0.1/{port} || exit 3; printf "%s\\n" "$1" >&3; cat <&3'
)


def render_config(backends: Mapping[Colour, str], map_path: str = f"/etc/{DIR}/colour.map", *,
                  live_bind: str = f":{LIVE_PORT}", preview_bind: str = f":{PREVIEW_PORT}",
                  local: bool = False, dns: Mapping[Colour, str] | None = None,
                  slots: int = DNS_SLOTS, shared_socket: str = "") -> str:
    """haproxy.cfg for the given colour -> ``host:port`` addresses (defaults: in a container).

    With ``dns`` (colour -> ``name:port``) each colour is a template of ``slots`` servers that
    HAProxy resolves itself; a colour absent from ``backends`` starts in maintenance. With
    ``shared_socket``, the runtime API also listens there (a unix socket, mode 0600).
    """
    # expose-fd listeners: a reload hands the listening sockets to the new worker (no refused
    # connection); idle-close-on-response: the old worker answers a request that arrives on an
    # idle keep-alive connection, then closes it, instead of closing it under the client
    admin = (f"unix@{ADMIN_SOCKET} mode 600 level admin expose-fd listeners" if local
             else f"ipv4@127.0.0.1:{ADMIN_PORT} level admin expose-fd listeners")
    lines = [
        "global",
        f"    stats socket {admin}",
        *([f"    stats socket unix@{shared_socket} mode 600 level admin"] if shared_socket else []),
        "    stats timeout 10s",
        *(_RESOLVERS if dns else []),
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 65s",
        "    timeout server 65s",
        "    timeout http-keep-alive 65s",
        "    option http-keep-alive",
        "    option idle-close-on-response",
        "frontend live",
        f"    bind {live_bind}",
        f"    use_backend be_%[str(live),map({map_path},none)]",
        "frontend preview",
        f"    bind {preview_bind}",
        f"    use_backend be_%[str(preview),map({map_path},none)]",
        "backend be_none",
        '    http-request return status 503 content-type text/plain string "bgci: no colour '
        'is deployed here yet\\n"',
    ]
    for colour in COLOURS:
        address = backends.get(colour)
        server = [f"server app {address}" if address else "server app 127.0.0.1:1 disabled"]
        if dns:
            # a task gone between two resolutions: its connection fails, the request goes elsewhere
            # init-addr libc: a new worker (a reload) starts with the addresses of a colour
            # that runs, not without them; a colour that runs nothing is not looked up at all
            init = "last,libc,none" if address else "none"
            server = ["option redispatch", "retries 3",
                      f"server-template app 1-{slots} {dns[colour]} resolvers bgci "
                      f"init-addr {init} resolve-prefer ipv4 check inter 1s fall 2 rise 1"
                      f"{'' if address else ' disabled'}"]
        lines += [
            f"backend be_{colour}",
            f"    http-response set-header X-Bgci-Color {colour}",
            *(f"    {line}" for line in server),
        ]
    return "\n".join(lines) + "\n"


# Docker's embedded DNS (127.0.0.11, from the task's resolv.conf) asked every second: a new
# address (a colour started again, a task added) is served within a second; an address that left
# the answer (a task gone) is dropped a second later, and so are all of them when the name is
# gone (NXDOMAIN: the colour was removed; its old addresses must not take requests, as they would
# until health checks failed twice). An answer that is no answer (a timeout, a refusal or another
# error of a DNS server busy on a loaded host) keeps the servers as they were for HAProxy's
# default 30 s: a DNS hiccup must never put every server of a colour in maintenance (503 "no
# server is available") while the colour is fine.
_RESOLVERS = [
    "resolvers bgci",
    "    parse-resolv-conf",
    "    accepted_payload_size 8192",
    "    resolve_retries 3",
    "    timeout resolve 1s",
    "    timeout retry 1s",
    "    hold valid 1s",
    "    hold obsolete 1s",
    "    hold nx 1s",
    "    hold other 30s",
    "    hold refused 30s",
    "    hold timeout 30s",
]


def render_map(live: Colour | None) -> str:
    preview: Colour = other(live) if live else "blue"
    return f"live {live or 'none'}\npreview {preview}\n"


def parse_map(text: str) -> dict[str, str]:
    """``show map`` output (``0xID key value``) or the file (``key value``) as a dict."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            key, value = parts[-2], parts[-1]
            entries[key] = value
    return entries


def live_in(show_map: str, where: str) -> Colour | None:
    """The live colour in ``show map``'s answer: ``None`` for ``live none`` (before the first
    switch). An answer without the live entry was not read (an empty or cut-off reply: the map
    bgci drives always has it), and is an error: a stage must never take it for "nothing is
    live" and move traffic on that belief."""
    entries = parse_map(show_map)
    if "live" not in entries:
        raise InfraError(f"{where} answered `show map` without the live entry "
                         f"({show_map.strip()[:120] or 'an empty answer'}): the live colour "
                         "could not be read", "nothing was changed; run the stage again")
    value = entries["live"]
    return value if value in COLOURS else None


class HAProxyRouter(RouterBase):
    """HAProxy on ``host``: bgci's own (``host.managed``) or the user's, driven the same way."""

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        super().__init__(config, host, where)
        self.dns = dict(host.dns_names)
        self.slots = max(DNS_SLOTS, config.platform.replicas)
        if host.managed:
            self.cfg = host.path(f"{DIR}/haproxy.cfg")
            self._map = self._map_path = host.path(f"{DIR}/colour.map")
            self.admin_at = host.path(ADMIN_SOCKET) if host.local else f"127.0.0.1:{ADMIN_PORT}"
            self.prefix = "be_"
        else:
            self.cfg = ""  # the user's haproxy.cfg: never written
            self._map = config.router.map_file  # as haproxy.cfg names it: the runtime API's key
            self._map_path = host.path(self._map)
            value = config.router.admin_socket
            self.admin_at = value if "/" not in value and ":" in value else host.path(value)
            self.prefix = f"bgci-{self.app}-"
        image = config.router.image or DEFAULT_IMAGE
        self.spec = router_spec(
            "haproxy", config, host, where, image=image, template=TEMPLATE_VERSION,
            command=["haproxy", "-W", "-db", "-f", self.cfg], labels=dict([SEAMLESS]),
            legacy_facts=(sorted(self.dns.items()), self.slots) if self.dns else (),
            name=f"your HAProxy ({self.admin_at})",
            shared=SHARED if host.managed and not host.local else "")
        self._shared: str | None = None  # the shared directory (RouterHost.shared), once looked up
        self._looked = False
        self.where = (f"HAProxy runtime API in {self.spec.name}" if host.managed
                      else f"your HAProxy's runtime API at {self.admin_at}")

    # -- runtime API -----------------------------------------------------------------------
    @property
    def map(self) -> str:
        """The map file as haproxy.cfg names it (the runtime API's key): in the shared directory
        when the container shares one, so that bgci rewrites it there without the engine."""
        return f"{SHARED}/colour.map" if self._shared_dir() else self._map

    @property
    def map_path(self) -> str:
        return self.map if self._shared_dir() else self._map_path

    def _here(self, path: str) -> Path | None:
        """``path`` of the container's shared directory as bgci reaches it on this machine (None:
        not shared, or not from here: bgci in a container of its own)."""
        shared = self._shared_dir()
        if not shared or not path.startswith(SHARED + "/") or \
                not os.path.exists(f"{shared}/admin.sock"):
            return None
        return Path(shared, path[len(SHARED) + 1:])

    def _read(self, path: str) -> bytes | None:
        here = self._here(path)
        return read_or_none(here) if here else self.host.read(self.spec, path)

    def _write(self, files: Mapping[str, bytes]) -> None:
        """Files HAProxy starts from, each in one rename: in the shared directory directly."""
        rest = dict(files)
        for path, data in files.items():
            here = self._here(path)
            if here:
                write_atomic(here, data, mode=0o600)
                del rest[path]
        if rest:
            self.host.write(self.spec, rest)

    def _shared_dir(self) -> str | None:
        """The directory the container shares with bgci's user (None: not shared); looked up
        once (the engine keeps it in a label)."""
        if not self._looked:
            self._shared, self._looked = self.host.shared(self.spec), True
        return self._shared

    def _admin(self, command: str) -> str:
        """One command (or several, ``;``-separated) on the runtime API: its answer."""
        try:
            if self.host.local:
                return sockets.command(self.admin_at, command)
            shared = self._shared_dir()
            # not there from here when bgci runs in a container of its own; not yet while
            # HAProxy starts: through the engine then
            if shared and os.path.exists(f"{shared}/admin.sock"):
                with contextlib.suppress(OSError):
                    return sockets.command(f"{shared}/admin.sock", command)
            argv = ["bash", "-c", _ADMIN.format(port=ADMIN_PORT), "bgci", command]
            code, out = self.host.execute(self.spec, argv)
        except (OSError, InfraError) as exc:  # e.g. the router was stopped: say what it means
            code, out = 3, getattr(exc, "message", str(exc))
        if code != 0:
            raise InfraError(
                f"{self.where} did not answer (exit {code}): {out.strip()[:300]}",
                "is the router running (after `bgci down`: `bgci up`)? nothing was changed"
                if self.host.managed else
                "is HAProxy running with that stats socket at level admin? nothing was changed")
        return out

    def _admin_checked(self, command: str) -> str:
        out = self._admin(command)
        bad = [
            line for line in out.splitlines()
            if line.strip() and not line.startswith(("0x", "#"))
            and "changed from" not in line and "no need to change" not in line
        ]
        if bad:
            raise InfraError(f"HAProxy refused {command!r}: {' '.join(bad)[:300]}",
                             "nothing was switched; live traffic is where it was")
        return out

    def _wait_admin(self, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self._admin("show info")
                return
            except InfraError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- Router ----------------------------------------------------------------------------
    def _start(self, live: Colour | None, log: Log) -> None:
        log.info(f"starting router {self.spec.name} (live: {live or 'nothing yet'})")
        self._shared = self.host.shared(self.spec, starting=True)
        self._looked = True
        self.host.start(self.spec, self._files(live, self._addresses(running={})), log)
        self._wait_admin()

    def _saved_live(self) -> Colour | None:
        saved = self._read(self.map_path)
        live = parse_map(saved.decode("utf-8", "replace")).get("live") if saved else None
        return live if live in COLOURS else None

    def _sync(self, log: Log) -> None:
        if not self.managed:
            self._check_users_config()
        self._sync_servers()

    def _check_users_config(self) -> None:
        """The map and the two backends bgci drives, as the user's haproxy.cfg must declare them;
        map entries that an empty map file lacks are added (``set map`` only changes entries)."""
        maps = self._admin("show map")
        if f"({self.map})" not in maps:
            raise InfraError(
                f"{self.where} has no map {self.map} (router.map_file)",
                f"route with it in haproxy.cfg, e.g. use_backend bgci-{self.app}-%[str(live),"
                f"map({self.map},none)], and give router.map_file exactly as haproxy.cfg names it")
        for colour in COLOURS:
            answer = self._admin(f"show servers state {self._backend(colour)}")
            if "Can't find backend" in answer or f" {self._backend(colour)} " not in answer:
                raise InfraError(
                    f"{self.where} has no backend {self._backend(colour)} with a server app",
                    f"declare it in haproxy.cfg: backend {self._backend(colour)} / http-response "
                    f"set-header X-Bgci-Color {colour} / server app 127.0.0.1:1 disabled "
                    "(see docs/routers.md)")
        entries = parse_map(self._admin(f"show map {self.map}"))
        missing = [key for key in ("live", "preview") if key not in entries]
        if missing:
            saved = parse_map((self._read(self.map_path) or b"").decode(
                "utf-8", "replace"))
            first = {"live": saved.get("live", "none"), "preview": saved.get("preview", "blue")}
            self._admin_checked(";".join(f"add map {self.map} {key} {first[key]}" for key in missing))

    def _files(self, live: Colour | None, addresses: Mapping[Colour, str]) -> dict[str, bytes]:
        """What HAProxy starts from: its config (bgci's own router only) and the map."""
        files = {self.map_path: render_map(live).encode()}
        if self.cfg:
            config = render_config(self._backends, self.map, local=self.host.local,
                                   live_bind=self.host.bind(self.spec, LIVE_PORT),
                                   preview_bind=self.host.bind(self.spec, PREVIEW_PORT),
                                   dns=addresses or None, slots=self.slots,
                                   shared_socket=f"{SHARED}/admin.sock" if self._shared_dir()
                                   else "")
            files[self.cfg] = config.encode()
        return files

    def _running_addresses(self) -> dict[Colour, str]:
        """colour -> ``name:port`` the running HAProxy resolves (its haproxy.cfg, which bgci only
        writes when HAProxy starts or reloads it)."""
        if not (self.dns and self.cfg):
            return {}
        text = (self.host.read(self.spec, self.cfg) or b"").decode("utf-8", "replace")
        return {colour: address for colour, address in _TEMPLATE_ADDRESS.findall(text)}

    def _addresses(self, running: Mapping[Colour, str]) -> dict[Colour, str]:
        """colour -> ``name:port`` HAProxy should resolve: a deployed colour's own address (its
        own port), else what the router resolves now, else the colour's default name."""
        if not self.dns:
            return {}
        return {colour: self._backends.get(colour) or running.get(colour) or self.dns[colour]
                for colour in COLOURS}

    def _reload(self, live: Colour | None, addresses: Mapping[Colour, str],
                changed: list[str]) -> None:
        """Give HAProxy a new haproxy.cfg by a seamless reload (master-worker: the new worker
        takes the listening sockets, the old one finishes what it serves and closes each idle
        keep-alive connection only after answering on it): no request is lost. A router that
        cannot reload that way (started by bgci 0.1) is not reloaded: Refused (exit 4)."""
        if self.host.labels(self.spec).get(SEAMLESS[0]) != SEAMLESS[1]:
            raise Refused(
                f"HAProxy ({self.spec.name}) must load a new configuration to reach "
                f"{', '.join(changed)}, and this router, started by an earlier bgci, would close "
                "idle keep-alive connections under their clients while reloading; nothing was "
                "changed", "`bgci router reboot` restarts it with bgci's current configuration, "
                "which reloads without dropping a connection (the reboot itself cuts live traffic "
                "for a second or two)")
        old = self._worker_pid()
        self._write(self._files(live, addresses))
        self.host.signal(self.spec, "USR2")
        self._wait_reloaded(addresses)
        self._wait_worker_left(old)

    def _worker_pid(self) -> str:
        """The pid of the worker that answered (``show info``): "" when it did not say."""
        match = re.search(r"^Pid: (\d+)", self._admin("show info"), re.MULTILINE)
        return match.group(1) if match else ""

    @waits_on("router")
    def _wait_worker_left(self, old: str) -> None:
        """Until only the new worker answers the runtime API. For a moment after a reload both
        workers accept on the socket they share; a ``set`` the old one took would be lost with
        it, and a read it took would be cut off. Several answers in a row from another pid
        mean the master has told the old worker to stop."""
        if not old:
            return
        deadline = time.monotonic() + RELOAD_TIMEOUT
        in_a_row = 0
        while in_a_row < 5:
            try:
                in_a_row = in_a_row + 1 if self._worker_pid() not in ("", old) else 0
            except InfraError:
                in_a_row = 0
            if time.monotonic() > deadline:
                raise InfraError(f"HAProxy ({self.spec.name}) still answers from its old worker "
                                 f"(pid {old}) {RELOAD_TIMEOUT:.0f}s after a reload",
                                 "its log says why; live traffic is where it was")
            time.sleep(0.05)

    @waits_on("router")
    def _wait_reloaded(self, addresses: Mapping[Colour, str]) -> None:
        """Until the runtime API shows every colour's servers at their new name and port."""
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while True:
            try:
                if all(self._served_address(colour) == address
                       for colour, address in addresses.items()):
                    return
            except InfraError:
                pass  # the new worker is not answering yet
            if time.monotonic() > deadline:
                raise InfraError(f"HAProxy ({self.spec.name}) did not load its new configuration "
                                 f"within {RELOAD_TIMEOUT:.0f}s", "its log says why (`docker "
                                 "logs` / the router's log file); live traffic is where it was")
            time.sleep(0.1)

    def _served_address(self, colour: Colour) -> str:
        """``fqdn:port`` of the first server of ``colour``'s backend, as HAProxy runs it."""
        lines = self._admin(f"show servers state {self._backend(colour)}").splitlines()
        header = next((line[2:].split() for line in lines if line.startswith("# be_id")), [])
        for line in lines:
            fields = line.split()
            if header and len(fields) == len(header) and fields[0].isdigit():
                row = dict(zip(header, fields, strict=True))
                return f"{row['srv_fqdn']}:{row['srv_port']}"
        return ""

    def _sync_servers(self) -> None:
        live = self.live()
        running = self._running_addresses()
        addresses = self._addresses(running)
        changed = [f"{colour} at {address}" for colour, address in addresses.items()
                   if running.get(colour, address) != address]
        if changed:
            self._reload(live, addresses, changed)
        commands = []
        for colour in COLOURS:
            address = self._backends.get(colour)
            if self.dns:  # the addresses come from DNS: only in or out of maintenance
                state = "ready" if address else "maint"
                commands += [f"set server {self._backend(colour)}/app{i} state {state}"
                             for i in range(1, self.slots + 1)]
            elif address:
                host, port = split_address(address)
                commands += [f"set server {self._backend(colour)}/app addr {host} port {port}",
                             f"set server {self._backend(colour)}/app state ready"]
            else:
                commands.append(f"set server {self._backend(colour)}/app state maint")
        self._admin_checked(";".join(commands))
        self._persist(live, addresses)

    def _persist(self, live: Colour | None, addresses: Mapping[Colour, str] | None = None) -> None:
        """The files HAProxy starts from, for its next start (only those that changed)."""
        if addresses is None:
            addresses = self._addresses(self._running_addresses())
        changed = {path: data for path, data in self._files(live, addresses).items()
                   if self._read(path) != data}
        if changed:
            self._write(changed)

    def settle_for(self) -> float:
        """With colours found by DNS: a name resolved again each second, an answer about the
        container that was replaced held a second, servers checked each second (fall 2): three
        seconds in a row of health through HAProxy outlast them all."""
        return DNS_SETTLE if self.dns else 0.0

    def live(self) -> Colour | None:
        """The live entry of the map, as HAProxy answers it now. An answer cut off (a worker
        that stopped while answering) is read again, twice at most."""
        for _ in range(2):
            answer = self._admin(f"show map {self.map}")
            if "live" in parse_map(answer):
                break
            time.sleep(0.2)
        else:
            answer = self._admin(f"show map {self.map}")
        return live_in(answer, self.where)

    def _apply_backends(self) -> None:
        self._sync_servers()

    def switch(self, live: Colour) -> None:
        self._admin_checked(
            f"set map {self.map} live {live};set map {self.map} preview {other(live)}"
        )
        data = render_map(live).encode()  # for HAProxy's next start (its config is unchanged)
        if self._read(self.map_path) != data:
            self._write({self.map_path: data})

    def describe_switch(self, live: Colour) -> str:
        return (f"{self.where}:\n"
                f"  set map {self.map} live {live}\n  set map {self.map} preview {other(live)}\n"
                f"then {self.map_path} rewritten to the same, for HAProxy's next start")

    def _backend(self, colour: Colour) -> str:
        return f"{self.prefix}{colour}"

    def disconnect(self, colour: Colour) -> str:
        backend = self._backend(colour)
        # every server of the backend, whatever its layout: lines "be_id be_name srv_id srv_name ..."
        servers = [f"{backend}/{fields[3]}"
                   for fields in map(str.split, self._admin(f"show servers state {backend}").splitlines())
                   if len(fields) > 3 and fields[0].isdigit() and fields[1] == backend]
        if servers:
            self._admin_checked(";".join(f"shutdown sessions server {s}" for s in servers))
        return (f"HAProxy closed every session still open to {colour} "
                f"(shutdown sessions server {', '.join(servers[:2])}{' ...' if len(servers) > 2 else ''})")

    def stop(self, log: Log) -> None:
        self.host.stop(self.spec, log)

    def inflight(self, colour: Colour) -> int:
        row = backend_stats(self._admin("show stat")).get(self._backend(colour))
        return number(row.get("scur")) if row else 0

    def counters(self) -> Counters | None:
        """Each colour's backend in ``show stat``: HTTP requests, 5xx answers and the mean total
        time of its last 1024 requests (HAProxy keeps no distribution of response times)."""
        try:
            rows = backend_stats(self._admin("show stat"))
        except InfraError:
            return None
        backends = {colour: self._backend(colour) for colour in COLOURS}
        return Counters(time.time(), traffic_of(rows, backends), "HAProxy's show stat")


def _check(config: Config) -> None:
    if not config.router.client_keepalive:
        raise ConfigError(f"{config.origin('router.client_keepalive')}: router.client_keepalive is only for "
                          "router.kind = "
                          "\"nginx\": HAProxy switches without a reload and closes no connection",
                          "remove it")


KIND = RouterKind(name="haproxy", make=HAProxyRouter, attach=("admin_socket", "map_file"),
                  check=_check)
