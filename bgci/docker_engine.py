"""The Docker engine as every docker-based adapter reaches it: one client, errors as exit 3, files
in and out of containers, images built, looked up and run once.

Shared by the docker and swarm platforms, their state stores and their router hosts (none of which
imports another): what one of them does with the engine that another does too lives here.
"""

from __future__ import annotations

import calendar
import io
import json
import os
import posixpath
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors
import requests

from bgci.errors import BgciError, CheckFailed, ConfigError, InfraError
from bgci.log import Log
from bgci.model import ColourSpec, Release
from bgci.settings import Config
from bgci.timings import waiting, waits_on

LABEL = "org.bgci"
STATE_IMAGE = "bgci/state:1"
BUILD_TAIL = 20  # lines of a failed build's output in its error message (and build.xml)
# inside a container: rename each (temporary, final) pair of arguments, atomically
_RENAME = 'while [ "$#" -ge 2 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'


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


def public_host() -> str:
    """The host name the runner reaches the engine's published ports by: the host of a remote
    ``DOCKER_HOST`` (``ssh://``, ``tcp://``), else 127.0.0.1."""
    parsed = urlparse(os.environ.get("DOCKER_HOST", ""))
    return parsed.hostname if parsed.scheme in ("ssh", "tcp") and parsed.hostname else "127.0.0.1"


# -- files in containers ---------------------------------------------------------------------------
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


def replace_files(container: Any, files: Mapping[str, bytes], what: str) -> None:
    """Replace ``files`` in a running container, each in one rename.

    ``put_archive`` truncates and rewrites in place, so a watching router (Traefik) could read half
    a file: temporary names go beside the files, then are renamed inside, as root (the files are
    root's, the router may run as its own user).
    """
    temp = {path: posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.bgci-tmp")
            for path in files}
    container.put_archive("/", tar_files({temp[path]: data for path, data in files.items()}))
    pairs = [arg for path in files for arg in (temp[path], path)]
    result = container.exec_run(["sh", "-c", _RENAME, "sh", *pairs], user="0")
    if result.exit_code:
        raise InfraError(f"could not replace files in {what}: "
                         f"{bytes(result.output or b'').decode('utf-8', 'replace')[:300]}")


def execute(container: Any, argv: list[str]) -> tuple[int, str]:
    """``argv`` run inside a running container: exit code and output."""
    result = container.exec_run(argv, demux=False)
    return int(result.exit_code or 0), bytes(result.output or b"").decode("utf-8", "replace")


# -- what a colour was started with, as a label ---------------------------------------------------
def logs_after(fetch: Callable[..., Any], cursor: str) -> tuple[str, str]:
    """A container's or service's output after ``cursor`` (the engine's timestamp of the last
    line seen, in ns; "": from now) and the next cursor. ``fetch(**kw)`` is its ``logs``."""
    def read(**kw: Any) -> str:
        raw = fetch(timestamps=True, **kw)
        raw = raw if isinstance(raw, bytes) else b"".join(raw)  # a service's logs: chunks
        return raw.decode("utf-8", "replace")

    if not cursor:
        stamps = [_ns(line.partition(" ")[0]) for line in read(tail=1).splitlines()]
        return "", str(max([s for s in stamps if s is not None], default=0))
    after = int(cursor) if cursor.isdigit() else 0
    lines, newest = [], after
    for line in read(since=max(1, after // 10**9)).splitlines():
        stamp, _, text = line.partition(" ")
        ns = _ns(stamp)
        if ns is not None and ns > after:
            lines.append(text)
            newest = max(newest, ns)
    return "".join(f"{line}\n" for line in lines), str(newest)


def _ns(stamp: str) -> int | None:
    """An RFC 3339 timestamp with up to nanoseconds (the engine's log stamps) in ns since 1970."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    digits = "".join(ch for ch in fraction if ch.isdigit())[:9]
    return seconds * 10**9 + int(digits.ljust(9, "0") or 0)


def spec_label(spec: ColourSpec) -> str:
    """``spec`` as the value of a colour's ``org.bgci.spec`` label."""
    return json.dumps(spec.to_dict(), sort_keys=True)


def spec_of(labels: Mapping[str, str]) -> ColourSpec | None:
    """The spec a colour's labels record (None: started by bgci 0.1, which recorded none)."""
    try:
        return ColourSpec.from_dict(json.loads(labels.get(f"{LABEL}.spec") or "null"))
    except ValueError:
        return None


# -- images ----------------------------------------------------------------------------------------
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


def build_image(client: docker.DockerClient, config: Config, tag: str, log: Log) -> Release:
    """``docker build`` of ``build.context`` tagged ``<build.image>:<tag>``; pushed when
    ``build.push``."""
    cfg = config.build
    context = (config.root / cfg.context).resolve()
    if not (context / cfg.dockerfile).is_file():
        raise ConfigError(
            f"{config.source}: build.dockerfile {cfg.dockerfile!r} not found in "
            f"build.context {str(context)!r}"
        )
    ref = f"{config.image_repo}:{tag}"
    labels = {f"{LABEL}.app": config.app, "org.opencontainers.image.revision": tag}
    log.info(f"building {ref} from {context}")
    with engine(f"build {ref}"):
        stream = client.api.build(
            path=str(context), dockerfile=cfg.dockerfile, tag=ref, buildargs=cfg.build_args,
            labels=labels, rm=True, decode=True,
        )
        tail: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk["error"]).strip()
                last = "\n".join(tail[-BUILD_TAIL:])
                raise CheckFailed(f"docker build of {ref} failed: {error}\n"
                                  f"--- the build's last lines ---\n{last}",
                                  "the whole build log is above, in the build group")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log.info(line.rstrip())  # streamed: a long build shows where it is
                    tail = [*tail[-BUILD_TAIL:], line.rstrip()]
        image = client.images.get(ref)
    release = Release(image=ref, digest=str(image.id))
    if cfg.push:
        _push(client, ref, log)
    return release


def _push(client: docker.DockerClient, ref: str, log: Log) -> None:
    repo, tag = ref.rsplit(":", 1)
    auth = None
    if os.environ.get("BGCI_REGISTRY_USERNAME"):
        auth = {"username": os.environ["BGCI_REGISTRY_USERNAME"],
                "password": os.environ.get("BGCI_REGISTRY_PASSWORD", "")}
    log.info(f"pushing {ref}")
    with engine(f"push {ref}"):
        for chunk in client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in chunk:
                raise InfraError(f"push of {ref} failed: {chunk['error']}")
        digests = client.images.get(ref).attrs.get("RepoDigests") or []
    log.info(f"pushed {digests[0] if digests else ref}")


def resolve_image(client: docker.DockerClient, image: str) -> Release:
    """The release ``image`` names on the engine (pulled when missing), with its image ID."""
    with engine(f"look up image {image}"):
        try:
            found = client.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                found = client.images.pull(image)
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


def has_image(client: docker.DockerClient, release: Release) -> bool:
    with engine("look up an image"):
        try:
            client.images.get(release.digest or release.image)
            return True
        except docker.errors.ImageNotFound:
            return False


def run_one_off(client: docker.DockerClient, config: Config, network: str, release: Release,
                command: str, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """``command`` once in a throw-away container of ``release`` on ``network``: exit code and
    output (124 when it ran past ``timeout``)."""
    with engine("run a one-off container"):
        container = client.containers.create(
            release.digest or release.image, command=["/bin/sh", "-c", command],
            environment={**config.platform.env, **env}, network=network,
            labels={f"{LABEL}.app": config.app, f"{LABEL}.role": "hook"}, detach=True,
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


def ensure_bridge(client: docker.DockerClient, name: str, app: str) -> None:
    """The app's bridge network ``name`` (created when missing)."""
    with engine(f"create network {name}"):
        if not client.networks.list(names=[name]):
            client.networks.create(name, driver="bridge", labels={f"{LABEL}.app": app})


class EngineReleases:
    """Releases as images on the engine ``client`` talks to: what the docker and swarm platforms
    share (each sets ``client`` and ``config``)."""

    client: docker.DockerClient
    config: Config

    def build(self, tag: str, log: Log) -> Release:
        return build_image(self.client, self.config, tag, log)

    def resolve(self, image: str) -> Release:
        return resolve_image(self.client, image)

    def has(self, release: Release) -> bool:
        return has_image(self.client, release)
