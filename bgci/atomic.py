"""Replace a file in one rename, so that a reader (or a crash) sees the old file or the new, whole."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o666) -> None:
    """Write ``data`` (text as UTF-8) to a temporary file beside ``path``, fsync it, rename it over.

    The temporary name starts with a dot and ends in ``.tmp``: directory watchers that pick files
    by extension (Traefik's file provider) never read it half written. The default mode lets the
    umask decide, like a plain open(): artifact uploaders running as another user can read reports.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_or_none(path: str | Path) -> bytes | None:
    """The bytes of ``path``; None when it does not exist."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def write_keeping_mode(path: str | Path, data: bytes, default_mode: int = 0o644) -> None:
    """Replace ``path`` in one rename; an existing file keeps its mode (a new one gets
    ``default_mode``), and missing parent directories are made."""
    target = Path(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = default_mode
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, mode=mode)
