"""The Docker engine as every docker-based adapter reaches it: one client, errors as exit 3, files
in and out of containers, images built, looked up and run once.

Shared by the docker and swarm platforms, their state stores and their router hosts (none of which
imports another): what one of them does with the engine that another does too lives here.
"""

from __future__ import annotations

import calendar
import codecs
import contextlib
import io
import json
import os
import posixpath
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors
import requests

from bgci.errors import BgciError, InfraError
from bgci.model import ColourSpec, Release
from bgci.settings import Config
from bgci.timings import waiting, waits_on

LABEL = "org.bgci"
STATE_IMAGE = "bgci/state:1"
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
    except Exception as exc:  # paramiko's, for an ssh:// engine (imported only for one)
        if not type(exc).__module__.startswith("paramiko"):
            raise
        raise InfraError(f"the SSH connection to the docker engine failed while trying to {what}: "
                         f"{type(exc).__name__}: {exc}",
                         "the Docker SDK opens several SSH sessions at once: if the engine's sshd "
                         "refuses new ones, raise MaxSessions in its sshd_config (default 10)"
                         ) from exc


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


def connect_to(host: str, timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at ``host`` (a fleet's ``ssh://user@host``), checked with a ping."""
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
        client.ping()
    except Exception as exc:  # paramiko's, the SDK's and the socket's errors alike
        raise InfraError(f"cannot reach the docker engine at {host}: {exc}",
                         "is the host up, its sshd and dockerd running, and this runner's key "
                         "allowed in? nothing was changed") from exc
    return client


def why_unreachable(host: str) -> str | None:
    """None when the engine at ``host`` answers a ping within 20 s, else what went wrong."""
    try:
        connect_to(host, timeout=20).close()
    except InfraError as exc:
        return exc.message.removeprefix(f"cannot reach the docker engine at {host}: ")[:200] \
            or type(exc).__name__
    return None


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


def volume_binds(client: docker.DockerClient, app: str,
                 volumes: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``platform.volumes`` as the SDK mounts them: a name is the engine volume ``<app>-<name>``
    (created with the app's label when missing, never removed by bgci: it holds the app's data),
    an absolute path a directory of the engine's host."""
    binds = {}
    for source, target in volumes.items():
        if not source.startswith("/"):
            name = f"{app}-{source}"
            with engine(f"create volume {name}"):
                try:
                    client.volumes.get(name)
                except docker.errors.NotFound:
                    client.volumes.create(name, labels={f"{LABEL}.app": app,
                                                        f"{LABEL}.role": "data"})
            source = name
        binds[source] = {"bind": target, "mode": "rw"}
    return binds


def run_one_off(client: docker.DockerClient, config: Config, network: str, release: Release,
                command: str, env: dict[str, str], timeout: float, *,
                spec: ColourSpec | None = None,
                echo: Callable[[str], None] | None = None) -> tuple[int, str]:
    """``command`` once in a throw-away container of ``release`` on ``network``, with the app's
    environment and volumes (``spec``'s when given) plus ``env``: exit code and output (124 when
    it ran past ``timeout``; 0 = no limit). ``echo`` gets the output as it comes."""
    base = spec.env if spec is not None else config.platform.env
    binds = volume_binds(client, config.app,
                         spec.volumes if spec is not None else config.platform.volumes)
    with engine("run a one-off container"):
        container = client.containers.create(
            release.digest or release.image, command=["/bin/sh", "-c", command],
            environment={**base, **env}, network=network, volumes=binds,
            labels={f"{LABEL}.app": config.app, f"{LABEL}.role": "one-off"}, detach=True,
        )
        try:
            container.start()
            follower = _follow(container, echo) if echo else None
            note = ""
            try:
                code = int(container.wait(timeout=timeout or None).get("StatusCode", 1))
            except requests.RequestException:
                container.kill()
                code, note = 124, f"\n(timed out after {timeout:.0f}s)"
            if follower is not None:
                follower.join(5)
            output = bytes(container.logs()).decode("utf-8", "replace") + note
        finally:
            container.remove(force=True)
    return code, output


def _follow(container: Any, echo: Callable[[str], None]) -> threading.Thread:
    """A thread passing the container's output to ``echo`` as it comes, until it exits."""
    def pump() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with contextlib.suppress(Exception):  # the container went away: its output ends
            for chunk in container.logs(stream=True, follow=True):
                echo(decoder.decode(chunk))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def decoded(chunks: Iterator[bytes]) -> Iterator[str]:
    """A stream of output bytes as text (UTF-8 split across chunks kept whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text


def ensure_bridge(client: docker.DockerClient, name: str, app: str) -> None:
    """The app's bridge network ``name`` (created when missing)."""
    with engine(f"create network {name}"):
        if not client.networks.list(names=[name]):
            client.networks.create(name, driver="bridge", labels={f"{LABEL}.app": app})


def remove_app_objects(client: docker.DockerClient, app: str, network: str, roles: tuple[str, ...],
                       dry_run: bool, remove_network: Callable[[Any], None]) -> list[str]:
    """The app's containers of these ``roles`` and its network ``network`` removed (with
    ``dry_run``: only listed), for ``bgci destroy``: one line each."""
    done: list[str] = []
    for container in client.containers.list(all=True, filters={"label": [f"{LABEL}.app={app}"]}):
        if container.labels.get(f"{LABEL}.role") in roles:
            done.append(f"container {container.name} ({container.status})")
            if not dry_run:
                container.remove(force=True)
    for found in client.networks.list(names=[network]):
        if found.name == network:
            done.append(f"network {found.name}")
            if not dry_run:
                remove_network(found)
    return done
