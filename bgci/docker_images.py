"""Images as releases on a Docker engine: built (labelled with the app and the commit), pushed to a
registry and pulled from it by digest, looked up, dated, listed and removed. What the docker and
swarm platforms share about releases.

A pushed release is recorded as ``repository:tag@sha256:<manifest digest>``: every engine that
runs it pulls that very image, never whatever the tag names by then, and a person still reads its
version in the tag. The release's ``digest`` stays the image ID, which is the same on every engine
that pulled it (the ID is the digest of the image's configuration, pushed as it is).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import docker
import docker.auth
import docker.errors

from bgci.docker_engine import LABEL, engine
from bgci.errors import CheckFailed, ConfigError, InfraError
from bgci.log import Log
from bgci.model import Release, epoch
from bgci.settings import Config

BUILD_TAIL = 20  # lines of a failed build's output in its error message (and build.xml)
# The registry account bgci logs in with (push, pull, swarm services). BGCI_REGISTRY_USERNAME is
# the first spelling of the user's variable and is still read; none set: the runner's own
# `docker login` (~/.docker/config.json), if any.
REGISTRY_USER = ("BGCI_REGISTRY_USER", "BGCI_REGISTRY_USERNAME")
REGISTRY_PASSWORD = "BGCI_REGISTRY_PASSWORD"
CREDENTIALS_HINT = (f"set {REGISTRY_USER[0]} and {REGISTRY_PASSWORD} (masked in every log and "
                    "report), or run `docker login <registry>` as the runner's user")


def build_image(client: docker.DockerClient, config: Config, tag: str, log: Log,
                labels: Mapping[str, str]) -> Release:
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
    labels = {**labels, f"{LABEL}.app": config.app}
    log.info(f"building {ref} from {context}")
    with engine(f"build {ref}"):
        stream = client.api.build(
            path=str(context), dockerfile=cfg.dockerfile, tag=ref, buildargs=cfg.build_args,
            labels=labels, rm=True, forcerm=True, decode=True,  # none left by a failed build
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
    if cfg.push:
        ref = push(client, ref, log)
    return Release(image=ref, digest=str(image.id))


def repository(ref: str) -> str:
    """``ref`` without its tag and digest: ``registry:5000/shop:1.2@sha256:…`` -> ``registry:5000/shop``."""
    name = ref.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def log_in(client: docker.DockerClient, ref: str) -> None:
    """Give ``client`` the registry account of the environment for the registry of ``ref``: its
    pushes, pulls and swarm services use it. Nothing when none is set (the runner's own
    ``docker login`` is used, if any)."""
    user = next((os.environ[name] for name in REGISTRY_USER if os.environ.get(name)), "")
    if not user:
        return
    registry, _ = docker.auth.resolve_repository_name(repository(ref))
    with engine(f"log in to the registry {registry} as {user}"):
        client.login(username=user, password=os.environ.get(REGISTRY_PASSWORD, ""),
                     registry=registry)


def push(client: docker.DockerClient, ref: str, log: Log) -> str:
    """Push ``ref`` (``repository:tag``) to its registry; the reference pinned to what was
    pushed, ``repository:tag@sha256:…`` (InfraError, exit 3, when the registry refuses it)."""
    repo, _, tag = ref.rpartition(":")
    log_in(client, ref)
    log.info(f"pushing {ref}")
    digest = ""
    with engine(f"push {ref}"):
        for chunk in client.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise InfraError(f"push of {ref} failed: {chunk['error']}", CREDENTIALS_HINT
                                 if "auth" in str(chunk["error"]) else "is the registry up?")
            digest = str((chunk.get("aux") or {}).get("Digest") or digest)
        if not digest:  # an engine that does not say: what it recorded
            digest = pinned(ref, client.images.get(ref)).partition("@")[2]
    if not digest:
        raise InfraError(f"{ref} was pushed, but the registry named no digest for it",
                         "a registry that speaks the Docker Registry HTTP API V2 is needed")
    log.info(f"pushed {ref}@{digest}")
    return f"{ref}@{digest}"


def pinned(ref: str, image: Any) -> str:
    """``ref`` with the registry digest ``image`` was pushed or pulled by, when it has one for
    the repository of ``ref`` (``ref`` itself when it names a digest already, or the image was
    built here and never pushed)."""
    if "@" in ref:
        return ref
    repo = repository(ref)
    for known in image.attrs.get("RepoDigests") or []:
        name, _, digest = str(known).partition("@")
        if name == repo and digest:
            return f"{ref}@{digest}"
    return ref


def resolve_image(client: docker.DockerClient, image: str) -> Release:
    """The release ``image`` names on the engine (pulled when missing), with its image ID;
    pinned to its registry digest when it came from a registry (``pinned``)."""
    with engine(f"look up image {image}"):
        try:
            found = client.images.get(image)
        except docker.errors.ImageNotFound:
            log_in(client, image)
            try:
                found = client.images.pull(image)
            except docker.errors.APIError as exc:
                raise ConfigError(
                    f"image {image} is not on the engine and cannot be pulled: "
                    f"{exc.explanation}", "run `bgci build` first or pass --image REF"
                    + ("; " + CREDENTIALS_HINT if "auth" in str(exc.explanation) else ""),
                ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code != 400:
                raise
            # not an image reference at all: the user's input is wrong, not the engine
            raise ConfigError(f"{image!r} is not a valid image reference: {exc.explanation}",
                              "pass --image REPOSITORY:TAG (or REPOSITORY@sha256:...)") from exc
    return Release(image=pinned(image, found), digest=str(found.id))


def has_image(client: docker.DockerClient, release: Release) -> bool:
    """Whether the engine has the image of ``release``, or pulls it now by its registry digest."""
    with engine("look up an image"):
        try:
            client.images.get(release.digest or release.image)
            return True
        except docker.errors.ImageNotFound:
            if "@" not in release.image:
                return False
        log_in(client, release.image)
        try:
            pulled = client.images.pull(release.image)
        except docker.errors.APIError:
            return False
        return not release.digest or str(pulled.id) == release.digest


def tagged_image(client: docker.DockerClient, config: Config, tag: str) -> Release | None:
    """The image ``build_image`` tagged ``tag`` earlier, if the engine still has it (never
    pulled: a build changes only this engine)."""
    ref = f"{config.image_repo}:{tag}"
    with engine(f"look up image {ref}"):
        try:
            return Release(image=ref, digest=str(client.images.get(ref).id))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code != 400:
                raise
            return None  # not a reference: the build itself says so


def image_built(client: docker.DockerClient, release: Release) -> float | None:
    """When the image of ``release`` was created (epoch seconds); None when it is not here."""
    with engine("look up an image"):
        try:
            image = client.images.get(release.digest or release.image)
        except docker.errors.ImageNotFound:
            return None
    return epoch(str(image.attrs.get("Created") or ""))  # 2026-11-30T07:12:03.123456789Z


def app_images(client: docker.DockerClient, app: str) -> list[Release]:
    """The images bgci built for ``app`` on this engine (labelled with it), one per image."""
    with engine("list images"):
        images = client.images.list(filters={"label": f"{LABEL}.app={app}"})
    return [Release(image=(image.tags or [str(image.id)])[0], digest=str(image.id))
            for image in images]


def remove_image(client: docker.DockerClient, release: Release) -> None:
    """Remove the image of ``release`` with all its tags (nothing when it is gone already)."""
    with engine(f"remove image {release.short}"):
        try:
            image = client.images.get(release.digest or release.image)
        except docker.errors.ImageNotFound:
            return
        for tag in image.tags or []:
            client.images.remove(tag, noprune=False)
        with contextlib.suppress(docker.errors.ImageNotFound):  # its last tag was the last ref
            client.images.remove(str(image.id), force=False, noprune=False)


class EngineReleases:
    """Releases as images on the engine ``client`` talks to: what the docker and swarm platforms
    share (each sets ``client`` and ``config``)."""

    client: docker.DockerClient
    config: Config

    def build(self, tag: str, log: Log, labels: Mapping[str, str]) -> Release:
        return build_image(self.client, self.config, tag, log, labels)

    def resolve(self, image: str) -> Release:
        return resolve_image(self.client, image)

    def has(self, release: Release) -> bool:
        return has_image(self.client, release)

    def tagged(self, tag: str) -> Release | None:
        return tagged_image(self.client, self.config, tag)

    def built(self, release: Release) -> float | None:
        return image_built(self.client, release)

    def releases(self) -> list[Release]:
        return app_images(self.client, self.config.app)

    def remove(self, release: Release) -> None:
        remove_image(self.client, release)
