"""Images as releases on a Docker engine: built (labelled with the app and the commit), looked up,
dated, listed and removed. What the docker and swarm platforms share about releases."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import docker
import docker.errors

from bgci.docker_engine import LABEL, engine
from bgci.errors import CheckFailed, ConfigError, InfraError
from bgci.log import Log
from bgci.model import Release, epoch
from bgci.settings import Config

BUILD_TAIL = 20  # lines of a failed build's output in its error message (and build.xml)


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
