"""A real authoritative DNS server (BIND's ``named``) with a test zone and a TSIG key, a real
caching resolver (``unbound``) in front of it, both on loopback, and a load whose every new
connection resolves the live name through that resolver first, as a browser's does.

No pytest here: the DNS router's tests, the end-to-end scenario and the benchmark share it. Each
server is one process in a directory of its own (its config, zone and log), started by pid in a
session of its own and stopped by that pid, never by name; no system service is used.

Both run from a copy of their binary in that directory: Debian's AppArmor profiles confine
``/usr/sbin/named`` and ``/usr/sbin/unbound`` to their system directories, where a test's config
and zone in a temporary directory could not be read. A copy elsewhere runs unconfined.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.resolver

from tests.helpers.ports import fresh_port

SETUP_HINT = "run `bash scripts/test-env.sh` as root first (it installs bind9 and unbound)"
ZONE = "bgci.test"
KEY_NAME = "bgci-test"
BINARIES = {"named": "/usr/sbin/named", "unbound": "/usr/sbin/unbound"}


def missing() -> str:
    """A failure message naming the DNS servers that are not installed, or ""."""
    gone = [name for name, path in BINARIES.items() if not os.access(path, os.X_OK)]
    return f"not installed: {', '.join(gone)}: {SETUP_HINT}" if gone else ""


def new_secret() -> str:
    """A TSIG secret as tsig-keygen prints one (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(32)).decode()


def free_port() -> int:
    """A port of 127.0.0.1 free for both TCP and UDP (a DNS server listens on both)."""
    return fresh_port(udp=True)


def free_port_on(*hosts: str) -> int:
    """A TCP port free on each of ``hosts`` (loopback addresses), for colours on one port."""
    return fresh_port(hosts=hosts)


def query(server: tuple[str, int], name: str, rdtype: str = "A") -> list[str]:
    """What ``server`` itself answers for ``name`` (no cache in between)."""
    response = dns.query.udp(dns.message.make_query(name, rdtype), server[0], port=server[1],
                             timeout=2)
    return [item.to_text() for rrset in response.answer for item in rrset]


def serial(server: tuple[str, int]) -> int:
    """The zone's SOA serial: a server bumps it once per update it applies."""
    found = query(server, ZONE, "SOA")
    return int(found[0].split()[2])


class _Daemon:
    """One server process in ``root``, by pid."""

    name = ""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def argv(self, binary: str) -> list[str]:
        raise NotImplementedError

    def configure(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        try:
            query(self.address, ZONE, "SOA")
            return True
        except (OSError, dns.exception.DNSException):
            return False

    def start(self, timeout: float = 20.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.configure()
        binary = self.root / self.name
        shutil.copy2(BINARIES[self.name], binary)  # see the module's docstring: AppArmor
        log = open(self.root / f"{self.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.proc = subprocess.Popen(self.argv(str(binary)), cwd=self.root, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process this object started (its process group), by pid."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / f"{self.name}.log"
        text = path.read_text(errors="replace") if path.is_file() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Bind(_Daemon):
    """BIND's named, authoritative for ``ZONE``, taking updates signed with ``KEY_NAME``; another
    zone, ``other.test``, is there too and refuses every update (an ACL without the key)."""

    name = "named"

    def __init__(self, root: Path, secret: str) -> None:
        super().__init__(root)
        self.secret = secret

    def argv(self, binary: str) -> list[str]:
        # -g: in the foreground, logging to stderr; -n 1: one worker thread is plenty
        return [binary, "-g", "-n", "1", "-c", str(self.root / "named.conf")]

    def configure(self) -> None:
        root = self.root
        (root / "named.conf").write_text(f"""
options {{
    directory "{root}";
    pid-file "{root}/named.pid";
    session-keyfile "{root}/session.key";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
}};
controls {{ }};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};
zone "{ZONE}" {{ type primary; file "{root}/{ZONE}.zone"; allow-update {{ key "{KEY_NAME}"; }}; }};
zone "other.test" {{ type primary; file "{root}/other.test.zone"; allow-update {{ none; }}; }};
""", encoding="utf-8")
        for zone in (ZONE, "other.test"):
            # SOA minimum 1: a name that does not exist yet is not cached as missing for long
            (root / f"{zone}.zone").write_text(f"""$TTL 60
@ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 3600 1
@ IN NS ns.{zone}.
ns IN A 127.0.0.1
""", encoding="utf-8")


class Unbound(_Daemon):
    """unbound, a caching resolver on loopback that asks ``upstream`` (the zone's server) for
    ``ZONE``: prefetch and serve-expired off (its defaults), so an answer is cached exactly as
    long as its TTL says."""

    name = "unbound"

    def __init__(self, root: Path, upstream: tuple[str, int]) -> None:
        super().__init__(root)
        self.upstream = upstream

    def argv(self, binary: str) -> list[str]:
        return [binary, "-d", "-c", str(self.root / "unbound.conf")]

    def configure(self) -> None:
        host, port = self.upstream
        (self.root / "unbound.conf").write_text(f"""
server:
    interface: 127.0.0.1
    port: {self.port}
    do-ip6: no
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{self.root}"
    pidfile: "{self.root}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "iterator"
    prefetch: no
    serve-expired: no
    cache-min-ttl: 0
    local-zone: "test." nodefault
    domain-insecure: "{ZONE}"
remote-control:
    control-enable: no
stub-zone:
    name: "{ZONE}"
    stub-addr: {host}@{port}
""", encoding="utf-8")


@contextlib.contextmanager
def dns_servers(root: Path, secret: str) -> Iterator[tuple[Bind, Unbound]]:
    """named and unbound in front of it, stopped (by pid) when the block ends."""
    bind = Bind(root / "named", secret)
    resolver = Unbound(root / "unbound", bind.address)
    try:
        bind.start()
        resolver.start()
        yield bind, resolver
    finally:
        resolver.stop()
        bind.stop()


# -- clients that resolve first ------------------------------------------------------------------
@dataclass
class Request:
    started: float  # time.monotonic()
    ended: float
    colour: str  # the app's own colour (/version's "color"), "" when the request failed
    error: str = ""
    address: str = ""


@dataclass
class ResolvingLoad:
    """``clients`` threads, each sending GET /version on a new connection after resolving
    ``name`` through ``resolver`` (no cache of its own), one after the other, ``pause`` s apart,
    until stopped or ``limit`` s have passed. Never retries: every failure counts."""

    resolver: tuple[str, int]
    name: str
    port: int
    clients: int = 4
    pause: float = 0.02
    limit: float = 300.0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]

    def start(self) -> ResolvingLoad:
        self._began = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Request]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        return list(self.requests)

    def _run(self) -> None:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.resolver[0]]
        resolver.port = self.resolver[1]
        resolver.lifetime = 2.0
        while not self._stop.is_set() and time.monotonic() - self._began < self.limit:
            record = self._one(resolver)
            with self._lock:
                self.requests.append(record)
            self._stop.wait(self.pause)

    def _one(self, resolver: dns.resolver.Resolver) -> Request:
        started = time.monotonic()
        address = ""
        try:
            address = resolver.resolve(self.name, "A")[0].to_text()
            conn = http.client.HTTPConnection(address, self.port, timeout=5)
            try:
                conn.request("GET", "/version", headers={"Host": f"{self.name}:{self.port}",
                                                         "Connection": "close"})
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
            if response.status != 200:
                return Request(started, time.monotonic(), "", f"HTTP {response.status}", address)
            colour = str(json.loads(body).get("color") or "")
            return Request(started, time.monotonic(), colour, "", address)
        except (OSError, http.client.HTTPException, ValueError, dns.exception.DNSException) as exc:
            return Request(started, time.monotonic(), "", f"{type(exc).__name__}: {exc}", address)


def watch_answer(server: tuple[str, int], name: str, stop: threading.Event,
                 changes: list[tuple[float, list[str]]]) -> threading.Thread:
    """A thread that asks ``server`` for ``name`` every 10 ms and appends (time, answer) to
    ``changes`` each time the answer changes: when the authoritative record really moved."""

    def run() -> None:
        last: list[str] | None = None
        while not stop.is_set():
            with contextlib.suppress(OSError, dns.exception.DNSException):
                now = query(server, name)
                if now != last:
                    changes.append((time.monotonic(), now))
                    last = now
            stop.wait(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def time_to_all_new(requests: list[Request], moved: float, new: str) -> float:
    """Seconds from ``moved`` (when the authoritative record changed) until every request started
    from then on reached ``new``: 0 when the first one already did."""
    after = sorted((r for r in requests if r.started >= moved), key=lambda r: r.started)
    stale = [r for r in after if r.colour != new]
    return round(stale[-1].started - moved, 3) if stale else 0.0

