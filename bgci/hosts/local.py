"""A managed router as a detached process on this machine (the process platform's router host).

Its files, pidfile (``<name>.pid``: pid, start time, labels) and log live in one directory,
``<state dir>/<app>/router/``. The router binds router.listen / router.preview itself: there is no
port publishing, so ``bind`` hands it those addresses. Files are replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from bgci import detached
from bgci.atomic import read_or_none, write_atomic
from bgci.commands import run_argv
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.ports import RouterSpec

STOP_GRACE = 10.0


class LocalRouterHost:
    local = True
    managed = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dns_names: dict[Colour, str] = {}  # each colour has one address, set by bgci

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def bind(self, spec: RouterSpec, inner: int) -> str:
        host, port = spec.ports[inner]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _pidfile(self, spec: RouterSpec) -> Path:
        return self.directory / f"{spec.name}.pid"

    def _record(self, spec: RouterSpec) -> detached.PidRecord | None:
        return detached.read_record(self._pidfile(spec))

    def running(self, spec: RouterSpec) -> bool:
        record = self._record(spec)
        return record is not None and detached.alive(record)

    def labels(self, spec: RouterSpec) -> dict[str, str]:
        record = self._record(spec)
        labels = record.facts.get("labels") if record else None
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def shared(self, spec: RouterSpec, *, starting: bool = False) -> str | None:
        return None  # the router is a process here: its sockets are reachable already

    def signal(self, spec: RouterSpec, name: str) -> None:
        record = self._record(spec)
        if record is None or not detached.alive(record):
            raise InfraError(f"router {spec.name} is not running")
        os.kill(record.pid, getattr(signal, f"SIG{name}"))

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        self.stop(spec, log)
        self.write(spec, files)
        executable = spec.command[0]
        found = executable if "/" in executable else shutil.which(executable)
        if not found:
            raise InfraError(f"router {spec.name}: {executable!r} is not installed on this machine",
                             "install it (see the router's docs), or pick another router.kind")
        log_path = self.directory / f"{spec.name}.log"
        if log_path.exists():
            log_path.replace(log_path.with_name(log_path.name + ".1"))
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        record = detached.spawn([found, *spec.command[1:]], cwd=self.directory, env=env,
                                log_path=log_path, facts={"labels": dict(spec.labels)})
        detached.write_record(self._pidfile(spec), record)
        time.sleep(0.3)  # a router that cannot bind its ports exits at once: say why right here
        if not detached.alive(record):
            self._pidfile(spec).unlink(missing_ok=True)
            raise InfraError(
                f"router {spec.name} exited right after starting:\n{detached.tail(log_path, 10)}",
                "is another process using router.listen / router.preview?",
            )
        log.info(f"router {spec.name} started (pid {record.pid}, {found})")

    def stop(self, spec: RouterSpec, log: Log) -> None:
        """Stop the router process; its files stay, so the next start keeps the live colour."""
        record = self._record(spec)
        if record is None:
            return
        outcome = detached.terminate(record, STOP_GRACE)
        if outcome != "not running":
            log.info(f"router {spec.name} (pid {record.pid}) {outcome}")
        self._pidfile(spec).unlink(missing_ok=True)

    def destroy(self, spec: RouterSpec, dry_run: bool) -> list[str]:
        done = []
        record = self._record(spec)
        if record is not None and detached.alive(record):
            done.append(f"router {spec.name} (pid {record.pid})")
            if not dry_run:
                detached.terminate(record, STOP_GRACE)
        if self.directory.is_dir():
            done.append(f"{self.directory}/ (its files, log and binary)")
            if not dry_run:
                shutil.rmtree(self.directory)
        return done

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        for name, data in files.items():
            path = Path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, mode=0o600)

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        return read_or_none(path)

    def remove(self, spec: RouterSpec, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        return run_argv(argv, cwd=self.directory, timeout=30)
