"""The router contract with each router managed in a container (the docker platform's router host):
driven through the engine only (files by put_archive, commands by exec), published on loopback,
in front of two tiny backend containers named as the docker platform names its colours (HAProxy
finds them by name, the others by address). Images: the local stand-ins for the official ones
that scripts/test-env.sh builds (no registry here).

Per router: switch and rollback under load lose no request (for the client ZERO_LOSS names),
preview reaches only the idle colour, a dry run changes nothing, a new bgci process reads the live
colour back, and a router that is down refuses the switch (exit 3) and comes back on the colour
that was live.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bgci.config import load_config  # noqa: E402
from bgci.docker_engine import ensure_bridge  # noqa: E402
from bgci.errors import InfraError  # noqa: E402
from bgci.hosts import docker as docker_host  # noqa: E402
from bgci.hosts.docker import shared_dir  # noqa: E402
from bgci.ports import Router  # noqa: E402
from bgci.registry import make_router, open_site  # noqa: E402
from bgci.stages.watch import Watch  # noqa: E402
from tests.helpers.routers import SETUP_HINT, Load, fresh_colours, fresh_port  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

BASE_IMAGE = "bgci-test/python:bookworm"
IMAGES = {"haproxy": "bgci-test/haproxy:local", "traefik": "bgci-test/traefik:local",
          "nginx": "bgci-test/nginx:local", "caddy": "bgci-test/caddy:local"}
ZERO_LOSS = {kind: ("naive", "") for kind in IMAGES}  # clients that never retry, keep-alive on


class Log:
    def info(self, message: str) -> None:
        pass

    debug = info

    def group(self, title: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The engine with the router images; fails (never skips) with how to fix it."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the SDK raises many unrelated types for "no engine"
        pytest.fail(f"no docker engine ({exc}): {SETUP_HINT}", pytrace=False)
    missing = []
    for image in (*IMAGES.values(), BASE_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        client.close()
        pytest.fail(f"router images missing: {', '.join(missing)}: {SETUP_HINT}", pytrace=False)
    yield client
    client.close()


@contextlib.contextmanager
def containerised(tmp_path: Path, engine: Any, kind: str, extra: str = "") -> Iterator[Router]:
    """A ``kind`` router in a container, its two backends, all removed afterwards."""
    app = f"rt-{kind}-{uuid.uuid4().hex[:6]}"
    (tmp_path / "bgci.toml").write_text(
        f'app = "{app}"\n[platform]\nkind = "docker"\n'
        f'[router]\nkind = "{kind}"\nimage = "{IMAGES[kind]}"\n'
        f'listen = "127.0.0.1:{fresh_port()}"\npreview = "127.0.0.1:{fresh_port()}"\n{extra}'
        '[health]\npath = "/"\n[switch]\ndrain = 2\n')
    config = load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path, environ={})
    site = open_site(config)
    try:
        router = make_router(config, site)
        ensure_bridge(engine, f"bgci-{app}", app)  # the app network, as deploy-green makes it
        addresses = {}
        for colour in ("blue", "green"):
            container = engine.containers.run(
                BASE_IMAGE, ["python3", "-c", BACKEND, colour], name=f"{app}-{colour}",
                network=f"bgci-{app}", detach=True, labels={"org.bgci.test": "router-backend"})
            container.reload()
            ip = container.attrs["NetworkSettings"]["Networks"][f"bgci-{app}"]["IPAddress"]
            addresses[colour] = f"{ip}:8000"
        router.addresses = addresses  # type: ignore[attr-defined]
        router.ensure(addresses, None, Log())
        yield router
    finally:
        for name in (f"bgci-{app}-router", f"{app}-blue", f"{app}-green"):
            with contextlib.suppress(Exception):
                engine.containers.get(name).remove(force=True)
        with contextlib.suppress(Exception):
            engine.networks.get(f"bgci-{app}").remove()
        shutil.rmtree(shared_dir(f"bgci-{app}-router"), ignore_errors=True)
        site.close()


# the colour backend inside a container: "I am <colour>" on :8000, HTTP/1.1 keep-alive
BACKEND = """
import http.server, sys
body = f"I am {sys.argv[1]}".encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


def only(url: str, count: int = 10) -> str:
    seen = fresh_colours(url, count)
    assert len(seen) == 1, f"{url} answered with a mix: {seen}"
    return next(iter(seen))


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_in_a_container_switch_and_rollback_lose_nothing_and_read_back(
        tmp_path: Path, engine: Any, kind: str) -> None:
    client, extra = ZERO_LOSS[kind]
    with containerised(tmp_path, engine, kind, extra) as router:
        assert router.live() is None and only(router.preview_url) == "blue"
        router.switch("blue")
        watch = Watch(router).start()  # the router's counters, read as a switch's bake reads them
        with Load(router.live_url, 4, client=client, hard_cap=90) as load:
            load.wait_for(100)
            for live, idle in (("green", "blue"), ("blue", "green")):
                router.switch(live)  # type: ignore[arg-type]
                assert only(router.live_url) == live and only(router.preview_url) == idle
                load.wait_for(load.tally.sent + 100)
            tally = load.stop()
        watch.stop()
        assert tally.lost == 0, f"{kind} in a container lost {tally.lost}: {tally.errors}"
        counted = watch.between(watch.started)
        for colour, sent in tally.by_colour.items():  # plus at most the 40 of only() above
            got = counted[colour].requests  # type: ignore[index]
            assert 0.95 * sent <= got <= 1.05 * sent + 45, (kind, colour, sent, got, watch.source)
        plan = router.describe_switch("green")
        assert "green" in plan and router.live() == "blue" and only(router.live_url) == "blue"
        if kind == "nginx":
            assert "syntax is ok" in plan
        config = router.config  # type: ignore[attr-defined]
        assert make_router(config, open_site(config)).live() == "blue"  # a new bgci process


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_in_a_container_a_router_that_is_down_changes_nothing(tmp_path: Path, engine: Any,
                                                              kind: str) -> None:
    with containerised(tmp_path, engine, kind) as router:
        router.switch("green")
        router.stop(Log())
        with pytest.raises(InfraError) as caught:
            router.switch("blue")
        assert caught.value.exit_code == 3
        router.ensure(router.addresses, None, Log())  # type: ignore[attr-defined]
        assert router.live() == "green" and only(router.live_url) == "green"


def test_in_a_container_haproxys_runtime_api_is_reached_through_a_socket_only_bgcis_user_opens(
        tmp_path: Path, engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine runs on this machine: HAProxy's runtime API is also a unix socket in a
    directory of bgci's user (0700), bind-mounted into the container, which runs as that user
    (the socket is that user's, 0600), and the map file it starts from is there too. A switch
    speaks to the socket and rewrites the map there: nothing goes through the engine (no
    ``docker exec``, no archive), and it still switches, and a restarted router keeps it."""
    with containerised(tmp_path, engine, "haproxy") as router:
        router.switch("blue")
        where = shared_dir(router.spec.name)  # type: ignore[attr-defined]
        socket_path = where / "admin.sock"
        for path, mode in ((where, 0o700), (socket_path, 0o600), (where / "colour.map", 0o600)):
            info = path.stat()
            assert info.st_uid == os.geteuid(), f"{path} belongs to uid {info.st_uid}"
            assert stat.S_IMODE(info.st_mode) == mode, f"{path}: {stat.filemode(info.st_mode)}"
        assert stat.S_ISSOCK(socket_path.stat().st_mode)
        fresh = make_router(router.config, open_site(router.config))  # type: ignore[attr-defined]
        fresh.ensure(router.addresses, None, Log())  # type: ignore[attr-defined]
        through_engine: list[str] = []
        for name in ("execute", "replace_files", "read_file", "tar_files"):
            real = getattr(docker_host, name)
            monkeypatch.setattr(docker_host, name, lambda *a, _n=name, _r=real, **k: (
                through_engine.append(_n), _r(*a, **k))[1])
        fresh.switch("green")
        assert through_engine == [], f"the switch went through the engine: {through_engine}"
        assert fresh.live() == "green" and only(router.live_url) == "green"
        monkeypatch.undo()
        assert (where / "colour.map").read_text() == "live green\npreview blue\n"
        router.stop(Log())
        router.ensure(router.addresses, None, Log())  # type: ignore[attr-defined]
        assert router.live() == "green" and only(router.live_url) == "green"
