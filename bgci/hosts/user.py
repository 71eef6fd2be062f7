"""A router the user runs (``router.managed = false``): bgci attaches to it, never starts or stops it.

Its files are this machine's, at the paths the config gives (``~`` expanded, relative paths from
the config file's directory); bgci writes only the one part of it that it owns (a map file, a
dynamic file, an include file, two Caddy servers), each replaced in one rename keeping the mode of
the file it replaces. Commands the user configured (nginx's test and reload) run as given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bgci.atomic import read_or_none, write_keeping_mode
from bgci.commands import run_argv
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.ports import RouterSpec


class UserHost:
    """A ``RouterHost`` for a router bgci does not manage: ``running`` is always true (whether it
    answers is the router's own question) and ``start`` refuses, naming the router."""

    local = True
    managed = False

    def __init__(self, root: Path) -> None:
        self.root = root  # the config file's directory
        self.dns_names: dict[Colour, str] = {}

    def path(self, name: str) -> str:
        path = Path(os.path.expanduser(name))
        return str(path if path.is_absolute() else self.root / path)

    def bind(self, spec: RouterSpec, inner: int) -> str:
        host, port = spec.ports[inner]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def running(self, spec: RouterSpec) -> bool:
        return True

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        raise InfraError(f"{spec.name} does not answer, and bgci never starts a router it does "
                         "not manage (router.managed = false)",
                         "start your router, then run this stage again; nothing was changed")

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        for name, data in files.items():
            write_keeping_mode(name, data)

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        return read_or_none(path)

    def remove(self, spec: RouterSpec, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        return run_argv(argv)  # as it is: the user's own commands are given to /bin/sh by the router

    def destroy(self, spec: RouterSpec, dry_run: bool) -> list[str]:
        return []  # the user's router: bgci never removes it

    def labels(self, spec: RouterSpec) -> dict[str, str]:
        return {}

    def shared(self, spec: RouterSpec, *, starting: bool = False) -> str | None:
        return None  # the user's router: its runtime API is where the config says

    def signal(self, spec: RouterSpec, name: str) -> None:
        raise InfraError(f"bgci does not signal {spec.name}: router.managed = false")

    def stop(self, spec: RouterSpec, log: Log) -> None:
        log.info(f"router.managed = false: bgci leaves {spec.name} running")
