"""Ports for the servers the tests start, that no other test can be handed at the same time.

"Bind port 0, close, hand the number out" races: between the close and the server's own bind,
another test (another pytest-xdist worker, another tox env running beside this one) or bgci
itself (the process platform picks its colours' ports that way) can take the same number, and
the kernel hands its ephemeral range to every outgoing connection too. So the ports come from
below the ephemeral range, and each one is reserved for the life of the process that got it: an
exclusive ``flock`` on a file named after the port, which the kernel releases when the process
ends, however it ends. A port something already listens on is passed over.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import IO

FIRST, LAST = 20000, 32000  # below Linux's default ephemeral range (32768-60999)
_LOCKS = Path(tempfile.gettempdir()) / "bgci-test-ports"
_HELD: dict[int, IO[bytes]] = {}  # port -> its open, locked file: held until the process ends


def fresh_port(*, hosts: tuple[str, ...] = ("127.0.0.1",), udp: bool = False) -> int:
    """A TCP port (and UDP too with ``udp``) free on each of ``hosts``, reserved for this
    process: handed out once, never to another test process while this one lives."""
    _LOCKS.mkdir(mode=0o1777, exist_ok=True)
    start = random.randrange(FIRST, LAST)
    for offset in range(LAST - FIRST):
        port = FIRST + (start - FIRST + offset) % (LAST - FIRST)
        if port in _HELD or not _reserve(port):
            continue
        if _free(port, hosts, udp):
            return port
    raise RuntimeError(f"no port between {FIRST} and {LAST} is free on {', '.join(hosts)}")


def _reserve(port: int) -> bool:
    """True when this process now holds ``port``'s lock (kept, even if the port turns out busy:
    the next call goes on to another)."""
    handle = open(_LOCKS / f"{port}.lock", "ab")  # noqa: SIM115 -- held open on purpose
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    os.set_inheritable(handle.fileno(), False)
    _HELD[port] = handle
    return True


def _free(port: int, hosts: tuple[str, ...], udp: bool) -> bool:
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for host in hosts:
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    return False
    return True
