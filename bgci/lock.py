"""The deploy lock: one pipeline at a time per app, taken through the app's state store.

A lock whose holder ran on this host and is gone is broken at once; one older than ``lock.ttl`` is
stale and broken too (both said in the log). The store makes taking it atomic.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bgci.errors import LockHeld
from bgci.ports import LockInfo, StateStore


def new_lock(holder: str, job_url: str) -> LockInfo:
    return LockInfo(holder=holder, job_url=job_url, since=time.time(), token=uuid.uuid4().hex,
                    host=socket.gethostname(), pid=os.getpid())


def holder_is_gone(info: LockInfo) -> bool:
    """True when the lock's holder ran on this host and its process no longer exists."""
    if not info.pid or info.host != socket.gethostname():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def default_holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


@contextmanager
def deploy_lock(
    store: StateStore,
    info: LockInfo,
    *,
    ttl: float,
    wait: float,
    say: Callable[[str], None],
    poll: float = 0.5,
) -> Iterator[LockInfo]:
    """Hold the app's deploy lock for the block; wait up to ``wait`` s, break locks older than ttl."""
    take_lock(store, info, ttl=ttl, wait=wait, say=say, poll=poll)
    try:
        yield info
    finally:
        store.unlock(info)


def take_lock(store: StateStore, info: LockInfo, *, ttl: float, wait: float,
              say: Callable[[str], None], poll: float = 0.5) -> None:
    """Take the app's deploy lock for ``info``: wait up to ``wait`` s for its holder, break a lock
    older than ``ttl`` or held by a process of this host that is gone (LockHeld, exit 5, naming
    the holder, when it stays taken)."""
    deadline = time.monotonic() + wait
    announced = False
    while True:
        holder = store.try_lock(info)
        if holder is None:
            break
        if time.time() - holder.since > ttl:
            say(f"breaking stale deploy lock (older than lock.ttl={ttl:.0f}s): {holder.describe()}")
            store.unlock(holder)
            continue
        if holder_is_gone(holder):
            say(f"breaking the deploy lock of a process that is gone (pid {holder.pid} on this "
                f"host): {holder.describe()}")
            store.unlock(holder)
            continue
        if time.monotonic() >= deadline:
            raise LockHeld(
                f"deploy lock is held by {holder.describe()}",
                f"waited {wait:.0f}s (--lock-wait); if that pipeline is dead, run "
                "`bgci lock release` or wait for lock.ttl",
            )
        if not announced:
            say(f"waiting up to {wait:.0f}s for the deploy lock held by {holder.describe()}")
            announced = True
        time.sleep(poll)


class Lease:
    """A deploy lock that the first stage of a process takes and the next ones keep (``bgci
    deploy``: deploy-green to switch under one lock); ``release`` ends it."""

    def __init__(self) -> None:
        self.info: LockInfo | None = None
        self.store: StateStore | None = None

    def release(self) -> None:
        if self.info is not None and self.store is not None:
            self.store.unlock(self.info)
        self.info = None
