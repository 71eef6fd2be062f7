"""The deployment state and the deploy lock, kept with the target (never in the runner's cwd).

A ``StateStore`` holds one JSON document and one lock per app. Backends live beside this file
(``docker.py``: a volume on the engine; more per platform) and are chosen by the platform.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bgci.errors import LockHeld
from bgci.model import COLOURS, Colour, Release, iso

HISTORY_LIMIT = 500


@dataclass
class ColourRecord:
    """What bgci last put on a colour, kept even after its container is gone (for re-creation)."""

    release: Release | None = None
    deployed_at: float = 0.0
    idle_since: float = 0.0  # when it last stopped taking live traffic

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.to_dict() if self.release else None,
            "deployed_at": self.deployed_at,
            "idle_since": self.idle_since,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ColourRecord:
        data = data if isinstance(data, dict) else {}
        return cls(
            release=Release.from_dict(data.get("release")),
            deployed_at=float(data.get("deployed_at") or 0.0),
            idle_since=float(data.get("idle_since") or 0.0),
        )


@dataclass
class State:
    """The persistent facts. Which colour is live is NOT here: the router is asked."""

    app: str
    colours: dict[Colour, ColourRecord] = field(
        default_factory=lambda: {c: ColourRecord() for c in COLOURS}
    )
    candidate: Colour | None = None  # deployed by deploy-green, not yet switched to
    previous: Colour | None = None  # live before the last switch: the rollback target
    previous_release: Release | None = None
    rolled_back_to: Colour | None = None  # set by rollback, cleared by switch: rollback is idempotent
    verified: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # digest -> reason
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, colour: Colour) -> ColourRecord:
        return self.colours[colour]

    def release_of(self, colour: Colour) -> Release | None:
        return self.colours[colour].release

    def is_verified(self, digest: str) -> bool:
        return bool(digest) and digest in self.verified and digest not in self.quarantined

    def mark_verified(self, digest: str) -> None:
        if digest and digest not in self.verified:
            self.verified.append(digest)
            del self.verified[:-50]

    def quarantine(self, digest: str, reason: str) -> None:
        if digest:
            self.quarantined[digest] = reason
            if digest in self.verified:
                self.verified.remove(digest)

    def log(self, entry: dict[str, Any]) -> None:
        """Append a history entry (the oldest fall off past HISTORY_LIMIT)."""
        entry = {"at": iso(time.time()), **entry}
        self.history.append(entry)
        del self.history[:-HISTORY_LIMIT]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "app": self.app,
            "colours": {c: self.colours[c].to_dict() for c in COLOURS},
            "candidate": self.candidate,
            "previous": self.previous,
            "previous_release": self.previous_release.to_dict() if self.previous_release else None,
            "rolled_back_to": self.rolled_back_to,
            "verified": list(self.verified),
            "quarantined": dict(self.quarantined),
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, app: str, data: Any) -> State:
        data = data if isinstance(data, dict) else {}
        colours = data.get("colours") if isinstance(data.get("colours"), dict) else {}
        return cls(
            app=app,
            colours={c: ColourRecord.from_dict(colours.get(c)) for c in COLOURS},
            candidate=_colour(data.get("candidate")),
            previous=_colour(data.get("previous")),
            previous_release=Release.from_dict(data.get("previous_release")),
            rolled_back_to=_colour(data.get("rolled_back_to")),
            verified=[str(d) for d in data.get("verified") or []],
            quarantined={str(k): str(v) for k, v in (data.get("quarantined") or {}).items()},
            history=[h for h in data.get("history") or [] if isinstance(h, dict)],
        )


def _colour(value: Any) -> Colour | None:
    return value if value in COLOURS else None


@dataclass(frozen=True)
class LockInfo:
    """Who holds the deploy lock. ``token`` tells one holder from the next of the same name."""

    holder: str
    job_url: str = ""
    since: float = 0.0
    token: str = ""
    host: str = ""  # where the holder runs, with its pid: a dead local holder's lock is broken at once
    pid: int = 0

    def describe(self) -> str:
        age = time.time() - self.since
        url = f" ({self.job_url})" if self.job_url else ""
        return f"{self.holder}{url}, held for {age:.0f}s since {iso(self.since)}"

    def to_dict(self) -> dict[str, Any]:
        return {"holder": self.holder, "job_url": self.job_url, "since": iso(self.since)}


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


class StateStore(Protocol):
    """Where one app's state document and deploy lock live."""

    def read(self) -> State: ...

    def write(self, state: State) -> None: ...

    def try_lock(self, info: LockInfo) -> LockInfo | None:
        """Take the lock atomically; None when taken, else the current holder."""

    def unlock(self, info: LockInfo) -> None:
        """Release the lock if ``info`` (same token) still holds it."""

    def current_lock(self) -> LockInfo | None: ...


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
    try:
        yield info
    finally:
        store.unlock(info)
