"""Releases in a registry: what a push records, how a reference is pinned to a digest, and which
registry account bgci logs in with. The engine's side is faked here (its API calls are recorded);
tests/e2e/test_fleet.py pushes to a real registry and pulls on an engine that never saw the build."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from bgci.docker_engine import engine
from bgci.docker_images import has_image, log_in, pinned, push, repository, resolve_image
from bgci.errors import ConfigError, InfraError
from bgci.log import StderrLog
from bgci.model import Release

DIGEST = "sha256:" + "ab" * 32


class FakeImage:
    def __init__(self, repo_digests: list[str]) -> None:
        self.id = "sha256:" + "cd" * 32
        self.attrs = {"RepoDigests": repo_digests}


class FakeApi:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.pushed: list[tuple[str, str]] = []

    def push(self, repo: str, tag: str, stream: bool, decode: bool) -> Iterator[dict[str, Any]]:
        self.pushed.append((repo, tag))
        yield from self.chunks


class FakeImages:
    """An engine's images: ``image`` is there unless ``missing``; a pull gets ``remote``
    (or is refused with ``refusal``)."""

    def __init__(self, image: FakeImage) -> None:
        self.image = image
        self.missing = False
        self.remote = image
        self.refusal = ""
        self.pulled: list[str] = []

    def get(self, ref: str) -> FakeImage:
        if self.missing:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return self.image

    def pull(self, ref: str) -> FakeImage:
        self.pulled.append(ref)
        if self.refusal:
            raise docker.errors.APIError("pull refused", explanation=self.refusal)
        return self.remote


class FakeClient:
    def __init__(self, chunks: list[dict[str, Any]] = (), repo_digests: list[str] = ()) -> None:
        self.api = FakeApi(list(chunks))
        self.images = FakeImages(FakeImage(list(repo_digests)))
        self.logins: list[dict[str, str]] = []

    def login(self, **kw: str) -> None:
        self.logins.append(kw)


@pytest.fixture(autouse=True)
def no_registry_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BGCI_REGISTRY_USER", "BGCI_REGISTRY_USERNAME", "BGCI_REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("ref", "repo"), [
    ("shop", "shop"),
    ("shop:1.2", "shop"),
    ("registry.example.com:5000/team/shop:1.2", "registry.example.com:5000/team/shop"),
    ("registry.example.com:5000/team/shop", "registry.example.com:5000/team/shop"),
    (f"10.0.0.1:5000/shop:v1@{DIGEST}", "10.0.0.1:5000/shop"),
    (f"shop@{DIGEST}", "shop"),
])
def test_the_repository_of_a_reference(ref: str, repo: str) -> None:
    assert repository(ref) == repo


def test_a_pulled_or_pushed_image_is_pinned_to_its_digest_in_that_repository() -> None:
    image = FakeImage([f"other.example.com/shop@sha256:{'ee' * 32}", f"10.0.0.1:5000/shop@{DIGEST}"])
    assert pinned("10.0.0.1:5000/shop:v1", image) == f"10.0.0.1:5000/shop:v1@{DIGEST}"


def test_an_image_built_here_and_never_pushed_keeps_its_reference() -> None:
    assert pinned("shop:v1", FakeImage([])) == "shop:v1"
    # a digest of another repository says nothing about this one
    assert pinned("shop:v1", FakeImage([f"mirror.example.com/shop@{DIGEST}"])) == "shop:v1"


def test_a_reference_with_a_digest_is_kept_as_it_is() -> None:
    ref = f"10.0.0.1:5000/shop:v1@{DIGEST}"
    assert pinned(ref, FakeImage([f"10.0.0.1:5000/shop@sha256:{'ee' * 32}"])) == ref


def test_a_push_records_the_digest_the_registry_gave() -> None:
    client = FakeClient([{"status": "Pushing"}, {"aux": {"Tag": "v1", "Digest": DIGEST}}])
    ref = push(client, "10.0.0.1:5000/shop:v1", StderrLog(-1))  # type: ignore[arg-type]
    assert ref == f"10.0.0.1:5000/shop:v1@{DIGEST}"
    assert client.api.pushed == [("10.0.0.1:5000/shop", "v1")]


def test_a_refused_push_is_an_infrastructure_error_that_says_how_to_log_in() -> None:
    client = FakeClient([{"error": "no basic auth credentials"}])
    with pytest.raises(InfraError) as caught:
        push(client, "10.0.0.1:5000/shop:v1", StderrLog(-1))  # type: ignore[arg-type]
    assert "no basic auth credentials" in caught.value.message
    assert "BGCI_REGISTRY_USER" in caught.value.hint


def test_a_push_without_a_digest_from_the_registry_is_an_error() -> None:
    client = FakeClient([{"status": "Pushed"}])
    with pytest.raises(InfraError, match="named no digest"):
        push(client, "10.0.0.1:5000/shop:v1", StderrLog(-1))  # type: ignore[arg-type]


def test_the_account_comes_from_the_environment_for_the_image_s_registry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGCI_REGISTRY_USER", "ci")
    monkeypatch.setenv("BGCI_REGISTRY_PASSWORD", "s3cret-pass")
    client = FakeClient()
    log_in(client, f"10.0.0.1:5000/shop:v1@{DIGEST}")  # type: ignore[arg-type]
    assert client.logins == [{"username": "ci", "password": "s3cret-pass",
                              "registry": "10.0.0.1:5000"}]


def test_the_first_spelling_of_the_user_variable_is_still_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGCI_REGISTRY_USERNAME", "old")
    monkeypatch.setenv("BGCI_REGISTRY_PASSWORD", "s3cret-pass")
    client = FakeClient()
    log_in(client, "registry.example.com/shop:v1")  # type: ignore[arg-type]
    assert [call["username"] for call in client.logins] == ["old"]
    monkeypatch.setenv("BGCI_REGISTRY_USER", "new")  # the new spelling wins
    log_in(client, "registry.example.com/shop:v1")  # type: ignore[arg-type]
    assert [call["username"] for call in client.logins] == ["old", "new"]


def test_without_an_account_in_the_environment_bgci_does_not_log_in() -> None:
    client = FakeClient()
    log_in(client, "registry.example.com/shop:v1")  # type: ignore[arg-type]
    assert client.logins == []  # the runner's own `docker login` applies, if any


PUSHED = f"10.0.0.1:5000/shop:v1@{DIGEST}"


def test_an_engine_without_a_pinned_release_pulls_it_by_digest_with_the_account(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGCI_REGISTRY_USER", "ci")
    client = FakeClient(repo_digests=[f"10.0.0.1:5000/shop@{DIGEST}"])
    client.images.missing = True
    release = Release(image=PUSHED, digest=client.images.image.id)
    assert has_image(client, release)  # type: ignore[arg-type]
    assert client.images.pulled == [PUSHED]
    assert [call["registry"] for call in client.logins] == ["10.0.0.1:5000"]


def test_a_pulled_image_with_another_id_is_not_the_release() -> None:
    client = FakeClient()
    client.images.missing = True
    assert not has_image(client, Release(image=PUSHED, digest="sha256:" + "99" * 32))  # type: ignore[arg-type]


def test_a_release_never_pushed_is_not_pulled_by_its_tag() -> None:
    client = FakeClient()
    client.images.missing = True
    assert not has_image(client, Release(image="shop:v1", digest="sha256:" + "cd" * 32))  # type: ignore[arg-type]
    assert client.images.pulled == []  # a tag may name another image by now


def test_an_image_pulled_for_deploy_is_recorded_pinned_to_its_digest() -> None:
    client = FakeClient(repo_digests=[f"10.0.0.1:5000/shop@{DIGEST}"])
    client.images.missing = True
    release = resolve_image(client, "10.0.0.1:5000/shop:v1")  # type: ignore[arg-type]
    assert (release.image, release.digest) == (f"10.0.0.1:5000/shop:v1@{DIGEST}",
                                               client.images.image.id)


def test_a_pull_refused_for_want_of_an_account_says_how_to_give_one() -> None:
    client = FakeClient()
    client.images.missing = True
    client.images.refusal = "unauthorized: authentication required"
    with pytest.raises(ConfigError) as caught:
        resolve_image(client, "10.0.0.1:5000/shop:v1")  # type: ignore[arg-type]
    assert caught.value.exit_code == 2
    assert "cannot be pulled: unauthorized" in caught.value.message
    assert "BGCI_REGISTRY_USER" in caught.value.hint


def test_an_ssh_session_the_engine_refuses_is_exit_3_naming_sshds_limit() -> None:
    """paramiko's errors (DOCKER_HOST=ssh://) are the engine's, not a bgci bug."""

    class ChannelException(Exception):  # as paramiko raises it when sshd refuses a session
        pass

    ChannelException.__module__ = "paramiko.ssh_exception"
    with pytest.raises(InfraError) as caught, engine("read the deployment state"):
        raise ChannelException(2, "Connect failed")
    assert caught.value.exit_code == 3
    assert "while trying to read the deployment state" in caught.value.message
    assert "MaxSessions" in caught.value.hint
