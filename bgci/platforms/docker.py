"""The docker platform: each colour a labelled container, everything through the engine's API.

``DOCKER_HOST`` is honoured (local socket, ``tcp://`` or ``ssh://``): the colours, the managed
router and the state all live on that engine, so any runner that reaches it can run any stage.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import docker
import docker.errors
import requests

from bgci.config import Config
from bgci.errors import BgciError, CheckFailed, ConfigError, InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour, Instance, Release
from bgci.routers import RouterSpec
from bgci.timings import waiting, waits_on

if TYPE_CHECKING:
    from bgci.state.docker import DockerStore

LABEL = "org.bgci"
# inside a router container: rename each (temporary, final) pair of arguments, atomically
_RENAME = 'while [ "$#" -ge 2 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'
STATE_IMAGE = "bgci/state:1"


@contextmanager
def engine(what: str) -> Iterator[None]:
    """Turn the SDK's exceptions into InfraError (exit 3) that say what bgci was doing."""
    try:
        with waiting("engine", what):
            yield
    except BgciError:
        raise
    except docker.errors.APIError as exc:
        raise InfraError(f"docker engine refused to {what}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise InfraError(f"docker engine unreachable while trying to {what}: {exc}") from exc


@waits_on("engine")
def connect() -> docker.DockerClient:
    """A client for ``DOCKER_HOST`` (default: the local socket), checked with a ping."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the SDK raises many unrelated types for "not there"
        raise InfraError(
            f"cannot reach the docker engine at {host}: {exc}",
            "is dockerd running, and does DOCKER_HOST point at it? nothing was changed",
        ) from exc
    return client


def tar_files(files: Mapping[str, bytes]) -> bytes:
    """A tar archive of ``files`` (absolute paths), with their parent directories, owned by root."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(files[path]), 0o644, now
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


def read_file(container: Any, path: str) -> bytes | None:
    """One file out of a container (running or not); None when it does not exist."""
    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member else None
        return handle.read() if handle else None


def ensure_image(client: docker.DockerClient, ref: str, what: str) -> None:
    """Make sure ``ref`` is on the engine, pulling it when it is not."""
    try:
        client.images.get(ref)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(ref)
    except docker.errors.APIError as exc:
        raise InfraError(
            f"{what} image {ref} is not on the engine and cannot be pulled: {exc.explanation}",
            "pull or build it on the engine, or point the config at an image that is there",
        ) from exc


def ensure_state_image(client: docker.DockerClient) -> None:
    """The empty image bgci's state and lock containers are made from (never started)."""
    try:
        client.images.get(STATE_IMAGE)
    except docker.errors.ImageNotFound:
        dockerfile = f'FROM scratch\nLABEL {LABEL}.role=state\nCMD ["/bgci-state"]\n'
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=STATE_IMAGE, rm=True)


class DockerPlatform:
    """Colours as containers ``<app>-blue`` / ``<app>-green`` on the network ``bgci-<app>``."""

    name = "docker"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = config.app
        self.client = connect()
        self.network = f"bgci-{self.app}"

    # -- build -----------------------------------------------------------------------------
    def build(self, tag: str, log: Log) -> Release:
        cfg = self.config.build
        context = (self.config.root / cfg.context).resolve()
        if not (context / cfg.dockerfile).is_file():
            raise ConfigError(
                f"{self.config.source}: build.dockerfile {cfg.dockerfile!r} not found in "
                f"build.context {str(context)!r}"
            )
        ref = f"{self.config.image_repo}:{tag}"
        labels = {f"{LABEL}.app": self.app, "org.opencontainers.image.revision": tag}
        log.info(f"building {ref} from {context}")
        with engine(f"build {ref}"):
            stream = self.client.api.build(
                path=str(context), dockerfile=cfg.dockerfile, tag=ref, buildargs=cfg.build_args,
                labels=labels, rm=True, decode=True,
            )
            tail: list[str] = []
            for chunk in stream:
                if "error" in chunk:
                    tail.append(str(chunk["error"]).strip())
                    raise CheckFailed(f"docker build of {ref} failed: " + tail[-1],
                                      "the build log above says where")
                line = str(chunk.get("stream", "")).rstrip()
                if line:
                    log.debug(line)
                    tail = [*tail[-20:], line]
            image = self.client.images.get(ref)
        release = Release(image=ref, digest=str(image.id))
        if cfg.push:
            release = self._push(ref, release, log)
        return release

    def _push(self, ref: str, release: Release, log: Log) -> Release:
        repo, tag = ref.rsplit(":", 1)
        auth = None
        if os.environ.get("BGCI_REGISTRY_USERNAME"):
            auth = {"username": os.environ["BGCI_REGISTRY_USERNAME"],
                    "password": os.environ.get("BGCI_REGISTRY_PASSWORD", "")}
        log.info(f"pushing {ref}")
        with engine(f"push {ref}"):
            for chunk in self.client.api.push(repo, tag=tag, stream=True, decode=True,
                                              auth_config=auth):
                if "error" in chunk:
                    raise InfraError(f"push of {ref} failed: {chunk['error']}")
            digests = self.client.images.get(ref).attrs.get("RepoDigests") or []
        log.info(f"pushed {digests[0] if digests else ref}")
        return release

    def resolve(self, image: str) -> Release:
        with engine(f"look up image {image}"):
            try:
                found = self.client.images.get(image)
            except docker.errors.ImageNotFound:
                try:
                    found = self.client.images.pull(image)
                except docker.errors.APIError as exc:
                    raise ConfigError(
                        f"image {image} is not on the engine and cannot be pulled: "
                        f"{exc.explanation}", "run `bgci build` first or pass --image REF",
                    ) from exc
            except docker.errors.APIError as exc:
                if exc.status_code != 400:
                    raise
                # not an image reference at all: the user's input is wrong, not the engine
                raise ConfigError(f"{image!r} is not a valid image reference: {exc.explanation}",
                                  "pass --image REPOSITORY:TAG (or REPOSITORY@sha256:...)") from exc
        return Release(image=image, digest=str(found.id))

    def has(self, release: Release) -> bool:
        with engine("look up an image"):
            try:
                self.client.images.get(release.digest or release.image)
                return True
            except docker.errors.ImageNotFound:
                return False

    # -- colours ---------------------------------------------------------------------------
    def _ensure_network(self) -> None:
        with engine(f"create network {self.network}"):
            if not self.client.networks.list(names=[self.network]):
                self.client.networks.create(self.network, driver="bridge",
                                            labels={f"{LABEL}.app": self.app})

    def _container(self, name: str) -> Any:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def start(self, colour: Colour, release: Release, log: Log) -> Instance:
        self._ensure_network()
        name = f"{self.app}-{colour}"
        port = self.config.platform.port
        with engine(f"start {name}"):
            old = self._container(name)
            if old is not None:
                log.info(f"removing the previous {colour} container ({old.short_id})")
                old.stop(timeout=int(min(self.config.switch.drain, 10)))
                old.remove(force=True)
            env = {**self.config.platform.env, "BGCI_COLOR": colour, "BGCI_APP": self.app,
                   "PORT": str(port)}
            container = self.client.containers.create(
                release.digest or release.image,
                name=name,
                environment=env,
                labels={f"{LABEL}.app": self.app, f"{LABEL}.role": "colour",
                        f"{LABEL}.colour": colour, f"{LABEL}.image": release.image,
                        f"{LABEL}.digest": release.digest, f"{LABEL}.started": str(time.time())},
                network=self.network,
                ports={f"{port}/tcp": ("127.0.0.1", None)},  # type: ignore[dict-item]  # any free port
                restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
                detach=True,
            )
            container.start()
            container.reload()
        instance = self._instance(container)
        if instance is None:
            raise InfraError(f"{name} started but has no address on network {self.network}")
        log.info(f"{colour}: started {container.short_id} running {release.short}")
        return instance

    def _instance(self, container: Any) -> Instance | None:
        labels = container.labels
        colour = labels.get(f"{LABEL}.colour")
        if colour not in COLOURS:
            return None
        net = container.attrs["NetworkSettings"]
        ip = (net.get("Networks", {}).get(self.network) or {}).get("IPAddress", "")
        port = self.config.platform.port
        bindings = (net.get("Ports") or {}).get(f"{port}/tcp") or []
        direct = f"http://127.0.0.1:{bindings[0]['HostPort']}" if bindings else ""
        return Instance(
            colour=colour,
            release=Release(labels.get(f"{LABEL}.image", ""), labels.get(f"{LABEL}.digest", "")),
            address=f"{ip}:{port}" if ip else "",
            running=container.status == "running",
            started_at=float(labels.get(f"{LABEL}.started") or 0),
            direct_url=direct,
        )

    def instances(self) -> dict[Colour, Instance]:
        found: dict[Colour, Instance] = {}
        with engine("list containers"):
            for container in self.client.containers.list(
                all=True, filters={"label": [f"{LABEL}.app={self.app}", f"{LABEL}.role=colour"]}
            ):
                instance = self._instance(container)
                if instance is not None:
                    found[instance.colour] = instance
        return found

    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        name = f"{self.app}-{colour}"
        with engine(f"stop {name}"):
            container = self._container(name)
            if container is None:
                return
            log.info(f"{colour}: stopping {container.short_id} (SIGTERM, up to {grace:.0f}s)")
            container.stop(timeout=int(grace))
            container.remove(force=True)

    def run_once(self, release: Release, command: str, env: dict[str, str],
                 timeout: float) -> tuple[int, str]:
        self._ensure_network()
        with engine("run a one-off container"):
            container = self.client.containers.create(
                release.digest or release.image, command=["/bin/sh", "-c", command],
                environment={**self.config.platform.env, **env}, network=self.network,
                labels={f"{LABEL}.app": self.app, f"{LABEL}.role": "hook"}, detach=True,
            )
            try:
                container.start()
                note = ""
                try:
                    code = int(container.wait(timeout=timeout).get("StatusCode", 1))
                except requests.RequestException:
                    container.kill()
                    code, note = 124, f"\n(timed out after {timeout:.0f}s)"
                output = bytes(container.logs()).decode("utf-8", "replace") + note
            finally:
                container.remove(force=True)
        return code, output

    def logs(self, colour: Colour, lines: int = 40) -> str:
        with engine("read container logs"):
            container = self._container(f"{self.app}-{colour}")
            if container is None:
                return ""
            return bytes(container.logs(tail=lines)).decode("utf-8", "replace")

    # -- neighbours ------------------------------------------------------------------------
    def store(self) -> DockerStore:
        from bgci.state.docker import DockerStore

        return DockerStore(self.client, self.app)

    def router_host(self) -> DockerRouterHost:
        self._ensure_network()
        names = {c: f"{self.app}-{c}:{self.config.platform.port}" for c in COLOURS}
        return DockerRouterHost(self.client, self.network, self.app, names)

    def public_host(self) -> str:
        parsed = urlparse(os.environ.get("DOCKER_HOST", ""))
        return parsed.hostname if parsed.scheme in ("ssh", "tcp") and parsed.hostname else "127.0.0.1"

    def close(self) -> None:
        self.client.close()


class DockerRouterHost:
    """A managed router as a container on the app's network; driven only through the engine API."""

    local = False

    def __init__(self, client: docker.DockerClient, network: str, app: str,
                 names: Mapping[Colour, str] | None = None) -> None:
        self.client = client
        self.network = network
        self.app = app
        # colour -> container name:port, which a router able to (HAProxy) resolves itself through
        # the network's DNS: container addresses change when the engine restarts, names do not
        # (see bgci.routers.dns_names)
        self.dns_names: dict[Colour, str] = dict(names or {})

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

    def label(self, spec: RouterSpec, key: str) -> str | None:
        with engine(f"inspect {spec.name}"):
            container = self._get(spec)
            return None if container is None else container.labels.get(key)

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        ensure_image(self.client, spec.image, "router")
        with engine(f"start the router {spec.name}"):
            old = self._get(spec)
            if old is not None:
                old.remove(force=True)
            container = self.client.containers.create(
                spec.image,
                command=spec.command,
                name=spec.name,
                labels={**spec.labels, f"{LABEL}.app": self.app, f"{LABEL}.role": "router"},
                network=self.network,
                ports={f"{inner}/tcp": outer for inner, outer in spec.ports.items()},
                restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
                detach=True,
            )
            container.put_archive("/", tar_files(files))
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

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        with engine(f"write files into {spec.name}"):
            container = self._get(spec)
            if container is None:
                return
            if container.status != "running":
                container.put_archive("/", tar_files(files))
                return
            # put_archive truncates and rewrites in place: a watching router (Traefik) could read
            # half a file. Put temporary names beside the files, then rename them inside.
            temp = {path: posixpath.join(posixpath.dirname(path),
                                         f".{posixpath.basename(path)}.bgci-tmp") for path in files}
            container.put_archive("/", tar_files({temp[path]: data for path, data in files.items()}))
            pairs = [arg for path in files for arg in (temp[path], path)]
            # as root: the files are root's (put_archive), the router may run as its own user
            result = container.exec_run(["sh", "-c", _RENAME, "sh", *pairs], user="0")
            if result.exit_code:
                raise InfraError(f"could not replace files in {spec.name}: "
                                 f"{bytes(result.output or b'').decode('utf-8', 'replace')[:300]}")

    def read(self, spec: RouterSpec, path: str) -> bytes | None:
        with engine(f"read {path} from {spec.name}"):
            container = self._get(spec)
            return None if container is None else read_file(container, path)

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        with engine(f"run a command in {spec.name}"):
            container = self._get(spec)
            if container is None:
                raise InfraError(f"router {spec.name} does not exist")
            result = container.exec_run(argv, demux=False)
            return int(result.exit_code or 0), bytes(result.output or b"").decode("utf-8", "replace")

