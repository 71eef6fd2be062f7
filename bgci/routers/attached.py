"""What bgci needs to attach to a router the user runs (``router.managed = false``).

bgci owns exactly one part of such a router (a map file, a dynamic file, an include file, two
Caddy servers) and never writes anything else of it. Its files are replaced in one rename, keeping
the mode of the file they replace; the user's reload and test commands run through ``/bin/sh``.
Also here: reaching a unix socket whatever the depth of its directory, and HTTP over one.
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

from bgci.atomic import write_atomic
from bgci.config import Config
from bgci.log import Log
from bgci.routers import RouterSpec

RUN_TIMEOUT = 60.0


def user_path(config: Config, value: str) -> Path:
    """A path from the config: ``~`` expanded, relative ones from the config file's directory."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (config.root / path)


def read(path: str | Path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def write(path: str | Path, data: bytes) -> None:
    """Replace ``path`` in one rename; an existing file keeps its mode (a new one gets 0644)."""
    target = Path(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, mode=mode)


def restore(path: str | Path, data: bytes | None) -> None:
    """Put back what :func:`read` returned: the old content, or no file at all."""
    if data is None:
        Path(path).unlink(missing_ok=True)
    else:
        write(path, data)


def run(command: str, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    """``command`` (the user's, written for a shell) through ``/bin/sh -c``: exit code and output
    (127 when it cannot run)."""
    return run_argv(["/bin/sh", "-c", command], timeout)


def run_argv(argv: list[str], timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    """``argv`` as it is, no shell: exit code and output (127 when it cannot run)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def connect_unix(path: str | Path, timeout: float = 10.0) -> socket.socket:
    """A stream socket connected to the unix socket ``path``.

    Connected through a descriptor of its directory: a socket's path is limited to 107 bytes,
    and a state dir can be deeper than that.
    """
    where = Path(path)
    fd = os.open(where.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(f"/proc/self/fd/{fd}/{where.name}")
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = connect_unix(self.unix_path, self.timeout or 30.0)


def http_request(base: str, method: str, path: str, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None,
                 timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One request to ``base`` (``http://host:port``, or ``unix//abs/path`` of a unix socket).

    Status, headers (lower-case names) and body; OSError or HTTPException when nothing answers.
    """
    conn: http.client.HTTPConnection
    if base.startswith("unix/"):
        conn = _UnixConnection(base[len("unix/"):], timeout)
    else:
        rest = base.split("://", 1)[-1].rstrip("/")
        conn = http.client.HTTPConnection(rest, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


class UserHost:
    """A ``RouterHost`` for a router the user runs: its files are this machine's, at the paths
    the config gives; bgci never starts, stops or labels it (``running`` is always true: whether
    it answers is the router's own question)."""

    local = True

    def path(self, name: str) -> str:
        return name

    def bind(self, spec: RouterSpec, inner: int) -> str:
        host, port = spec.ports[inner]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def running(self, spec: RouterSpec) -> bool:
        return True

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        raise AssertionError("bgci never starts a router it does not manage")

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        for name, data in files.items():
            write(name, data)

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        return read(path)

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        return run_argv(argv)  # as it is: no shell to quote it for

    def label(self, spec: RouterSpec, key: str) -> str | None:
        return None

    def stop(self, spec: RouterSpec, log: Log) -> None:
        log.info(f"router.managed = false: bgci leaves {spec.name} running")
