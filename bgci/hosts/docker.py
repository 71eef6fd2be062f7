"""A managed router as a container on the app's network, driven only through the engine's API."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from bgci.atomic import write_atomic
from bgci.docker_engine import (
    LABEL,
    engine,
    ensure_bridge,
    ensure_image,
    execute,
    read_file,
    replace_files,
    tar_files,
)
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.ports import RouterSpec

SHARED_LABEL = f"{LABEL}.shared"  # the directory on this machine bind-mounted at spec.shared
SOCKET_PATH_MAX = 100  # a unix socket's path in it (the router names it: bytes to spare)


def shared_dir(name: str) -> Path:
    """Where the shared directory of router ``name`` lives on this machine: under the home of the
    user bgci runs as (it must outlive a reboot, as the container does), mode 0700."""
    return Path(os.path.expanduser("~/.local/state/bgci/routers")) / name


def _engine_here() -> bool:
    """The engine runs on this machine (its unix socket): a directory here can be mounted."""
    return os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")


class DockerRouterHost:
    """A managed router as a container on the app's network; driven only through the engine API."""

    local = False
    managed = True

    def __init__(self, client: docker.DockerClient, network: str, app: str,
                 names: Mapping[Colour, str] | None = None) -> None:
        self.client = client
        self.network = network
        self.app = app
        # colour -> container name:port, which a router able to (HAProxy) resolves itself through
        # the network's DNS: container addresses change when the engine restarts, names do not
        self.dns_names: dict[Colour, str] = dict(names or {})
        self._sharing: dict[str, str | None] = {}  # router name -> what a start shares

    def path(self, name: str) -> str:
        return posixpath.join("/etc", name)

    def bind(self, spec: RouterSpec, inner: int) -> str:
        return f":{inner}"  # all interfaces of the container; the engine publishes spec.ports

    def _get(self, spec: RouterSpec) -> Any:
        try:
            return self.client.containers.get(spec.name)
        except docker.errors.NotFound:
            return None

    def running(self, spec: RouterSpec) -> bool:
        with engine(f"inspect {spec.name}"):
            container = self._get(spec)
            return container is not None and container.status == "running"

    def labels(self, spec: RouterSpec) -> dict[str, str]:
        with engine(f"inspect {spec.name}"):
            container = self._get(spec)
            return {} if container is None else dict(container.labels)

    def signal(self, spec: RouterSpec, name: str) -> None:
        with engine(f"send SIG{name} to {spec.name}"):
            container = self._get(spec)
            if container is None or container.status != "running":
                raise InfraError(f"router {spec.name} is not running")
            container.kill(signal=f"SIG{name}")

    def shared(self, spec: RouterSpec, *, starting: bool = False) -> str | None:
        if not spec.shared:
            return None
        if not starting:
            return self.labels(spec).get(SHARED_LABEL) or None
        if spec.name not in self._sharing:
            self._sharing[spec.name] = self._can_share(spec)
        return self._sharing[spec.name]

    def _can_share(self, spec: RouterSpec) -> str | None:
        """The directory a router started now shares: this user's (0700), and one the engine
        sees (a file put there is seen through a mount of it: not so when bgci runs in a
        container of its own, whose files the engine does not see). None: it cannot."""
        where = shared_dir(spec.name)
        if not _engine_here() or len(str(where)) + 20 >= SOCKET_PATH_MAX:
            return None
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        if where.stat().st_uid != os.geteuid():
            raise InfraError(f"{where} belongs to another user: whoever owns it could reach the "
                             f"router's runtime API, so bgci does not share it; nothing was changed",
                             "remove it (bgci makes it again), or run bgci as its owner")
        os.chmod(where, 0o700)
        probe = where / f".probe-{os.urandom(6).hex()}"
        probe.write_bytes(b"bgci")
        ensure_image(self.client, spec.image, "router")
        with engine(f"look for {where} from the engine"):
            container = self.client.containers.create(
                spec.image, command=["true"], labels={f"{LABEL}.app": self.app},
                volumes={str(where): {"bind": "/bgci-probe", "mode": "ro"}})
            try:
                seen = read_file(container, f"/bgci-probe/{probe.name}") == b"bgci"
            finally:
                container.remove(force=True)
                probe.unlink(missing_ok=True)
        return str(where) if seen else None

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        ensure_bridge(self.client, self.network, self.app)
        ensure_image(self.client, spec.image, "router")
        with engine(f"start the router {spec.name}"):
            old = self._get(spec)
            # the new router is made (and its files put in) before the old one goes: between the
            # two, only the removal and the start (the published ports can be bound only once)
            staged = f"{spec.name}-next"
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(staged).remove(force=True)  # a run killed here before
            # the shared directory: this user's, mounted; the router runs as this user (its
            # sockets are this user's too, mode 0600); its files written here, never by the
            # engine (which would make the directory 0755 and the files root's)
            where = self.shared(spec, starting=True)
            share: dict[str, Any] = {} if where is None else {
                "volumes": {where: {"bind": spec.shared, "mode": "rw"}},
                "user": f"{os.geteuid()}:{os.getegid()}"}
            inside = {path: data for path, data in files.items()
                      if where and path.startswith(spec.shared + "/")}
            for path, data in inside.items():
                write_atomic(Path(str(where), path[len(spec.shared) + 1:]), data, mode=0o600)
            container = self.client.containers.create(
                spec.image,
                command=spec.command,
                name=staged if old is not None else spec.name,
                labels={**spec.labels, f"{LABEL}.app": self.app, f"{LABEL}.role": "router",
                        **({SHARED_LABEL: where} if where else {})},
                network=self.network,
                ports={f"{inner}/tcp": outer for inner, outer in spec.ports.items()},
                restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
                detach=True,
                **share,
            )
            container.put_archive("/", tar_files({path: data for path, data in files.items()
                                                  if path not in inside}))
            if old is not None:
                old.remove(force=True)
                container.rename(spec.name)
            try:
                container.start()
            except docker.errors.APIError as exc:
                container.remove(force=True)
                raise InfraError(
                    f"router {spec.name} could not start: {exc.explanation}",
                    "is another process using router.listen / router.preview?",
                ) from exc
        log.info(f"router {spec.name} started ({spec.image})")

    def stop(self, spec: RouterSpec, log: Log) -> None:
        with engine(f"stop the router {spec.name}"):
            container = self._get(spec)
            if container is not None and container.status == "running":
                container.stop(timeout=10)  # not removed: its files keep the live colour
                log.info(f"router {spec.name} stopped")

    def destroy(self, spec: RouterSpec, dry_run: bool) -> list[str]:
        done = []
        with engine(f"remove the router {spec.name}"):
            for name in (spec.name, f"{spec.name}-next"):
                with contextlib.suppress(docker.errors.NotFound):
                    container = self.client.containers.get(name)
                    done.append(f"router container {name} ({container.status}; its files with it)")
                    if not dry_run:
                        container.remove(force=True)
        if spec.shared and shared_dir(spec.name).is_dir():
            done.append(f"{shared_dir(spec.name)}/ (the router's runtime API socket)")
            if not dry_run:
                shutil.rmtree(shared_dir(spec.name))
        return done

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        with engine(f"write files into {spec.name}"):
            container = self._get(spec)
            if container is None:
                return
            if container.status != "running":
                container.put_archive("/", tar_files(files))
                return
            replace_files(container, files, spec.name)

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        with engine(f"read {path} from {spec.name}"):
            container = self._get(spec)
            return None if container is None else read_file(container, path)

    def remove(self, spec: RouterSpec, path: str) -> None:
        with engine(f"remove {path} from {spec.name}"):
            container = self._get(spec)
            if container is not None and container.status == "running":
                execute(container, ["rm", "-f", path])

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        with engine(f"run a command in {spec.name}"):
            container = self._get(spec)
            if container is None:
                raise InfraError(f"router {spec.name} does not exist")
            return execute(container, argv)
