"""Talking to a local admin interface: a unix socket whatever its directory's depth, HTTP over one.

Routers' admin interfaces are local and owner-only (HAProxy's runtime API, Caddy's admin API on a
unix socket of mode 0600); these reach them from the same machine.
"""

from __future__ import annotations

import http.client
import os
import socket
from collections.abc import Mapping
from pathlib import Path


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


def command(address: str, line: str, timeout: float = 10.0) -> str:
    """Send one ``line`` to a line-oriented admin socket (``/path`` of a unix socket, or
    ``host:port``), read until it closes: the answer. OSError when nothing answers."""
    if "/" in address:
        sock = connect_unix(address, timeout)
    else:
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    with sock:
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


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
