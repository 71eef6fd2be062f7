"""State in a directory on the target machine (the process platform's state dir).

``state.json`` is replaced atomically (temporary file, fsync, rename), so a reader or a crash never
sees half a document. The deploy lock is ``lock.json``, created with O_EXCL and holding its holder as
JSON. Every read-modify-write (take, inspect, release) runs under an ``fcntl`` lock on ``.guard``:
releasing compares the token and removes the file in one step that no other bgci can interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bgci.atomic import write_atomic
from bgci.errors import InfraError
from bgci.model import iso
from bgci.ports import LockInfo
from bgci.record import State


class FileStore:
    """One app's state document and deploy lock in ``directory`` (created on first use)."""

    def __init__(self, directory: Path, app: str) -> None:
        self.directory = directory
        self.app = app
        self.state_path = directory / "state.json"
        self.lock_path = directory / "lock.json"
        self.guard_path = directory / ".guard"

    @contextmanager
    def _guarded(self, what: str) -> Iterator[None]:
        """Hold the directory's fcntl lock; OSError becomes InfraError (exit 3) naming the path."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.guard_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InfraError(f"cannot {what}: state dir {self.directory} is not usable: {exc}",
                             "check platform.state_dir and its permissions") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        except OSError as exc:
            raise InfraError(f"cannot {what} in {self.directory}: {exc}",
                             "check platform.state_dir and its permissions") from exc
        finally:
            os.close(fd)  # closing drops the flock

    # -- the state document ----------------------------------------------------------------
    def read(self) -> State:
        with self._guarded("read the deployment state"):
            try:
                raw = self.state_path.read_bytes()
            except FileNotFoundError:
                return State(app=self.app)
        try:
            return State.from_dict(self.app, json.loads(raw))
        except ValueError as exc:
            raise InfraError(f"deployment state {self.state_path} is corrupt: {exc}",
                             "inspect or move it away; bgci starts a new one without it") from exc

    def write(self, state: State) -> None:
        data = json.dumps(state.to_dict(), indent=1).encode()
        with self._guarded("write the deployment state"):
            write_atomic(self.state_path, data, mode=0o600)
            self._sync_dir()

    # -- the deploy lock -------------------------------------------------------------------
    def try_lock(self, info: LockInfo) -> LockInfo | None:
        data = json.dumps({"holder": info.holder, "job_url": info.job_url, "since": info.since,
                           "since_iso": iso(info.since), "token": info.token, "host": info.host,
                           "pid": info.pid}, indent=1).encode()
        with self._guarded("take the deploy lock"):
            try:
                fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return self._holder()
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._sync_dir()
        return None

    def destroy(self, dry_run: bool) -> list[str]:
        done = [str(path) for path in (self.state_path, self.lock_path) if path.exists()]
        if dry_run or not self.directory.exists():
            return done
        with self._guarded("remove the deployment state"):
            self.state_path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
        self.guard_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # what another part of bgci left there stays
            self.directory.rmdir()
        return done

    def unlock(self, info: LockInfo) -> None:
        if not self.directory.exists():
            return  # destroyed, lock and all
        with self._guarded("release the deploy lock"):
            current = self._holder()
            if current is None or current.token != info.token:
                return  # free already, or someone else's lock now: never remove it
            self.lock_path.unlink(missing_ok=True)
            self._sync_dir()

    def current_lock(self) -> LockInfo | None:
        with self._guarded("read the deploy lock"):
            return self._holder()

    def _holder(self) -> LockInfo | None:
        """The lock file's holder; the caller holds the guard."""
        try:
            raw = self.lock_path.read_bytes()
            since_fallback = self.lock_path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            return LockInfo(holder=str(data["holder"]), job_url=str(data.get("job_url") or ""),
                            since=float(data["since"]), token=str(data.get("token") or ""),
                            host=str(data.get("host") or ""), pid=int(data.get("pid") or 0))
        except (ValueError, KeyError, TypeError):
            # a crash between create and write: a lock with no holder, stale after lock.ttl
            return LockInfo(holder=f"an unreadable lock file {self.lock_path}", since=since_fallback)

    def _sync_dir(self) -> None:
        """Make the last rename or create durable (a power cut must not bring the old file back)."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
