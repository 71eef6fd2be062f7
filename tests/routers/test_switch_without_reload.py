"""nginx and Caddy switch without a reload: many switches under keep-alive clients that never
retry lose nothing, and no connection is closed under them.

The clients are http.client connections, each kept open for the whole test, sending GET after GET
through the live address and never retrying or reconnecting on their own: a request that fails is
lost, and only then does that client open a new connection (counted). A reload (nginx's graceful
reload, Caddy's /load) closes idle keep-alive connections, so over this many switches it would
show as lost requests and reconnections (bench/router_reloads.py measures ~2.5 lost per nginx
reload with such clients). Each connection must also see both colours: the router picks the colour
per request, on connections opened before the switch too.

Also the switch file's safety: its directory belongs to bgci's user, and no one else may write
in it or to the file (whoever could would move live traffic); a directory someone else owns is
refused.

Against the real binaries (scripts/test-env.sh installs them), as the process platform runs them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bgci import routers  # noqa: E402
from bgci.config import load_config  # noqa: E402
from bgci.errors import InfraError  # noqa: E402
from bgci.health import COLOUR_HEADER  # noqa: E402
from bgci.ports import Router  # noqa: E402
from bgci.registry import make_router, open_site  # noqa: E402
from bgci.routers import switch_dir  # noqa: E402
from bgci.routers.caddy import CaddyRouter  # noqa: E402
from bgci.routers.nginx import NginxRouter  # noqa: E402
from tests.helpers.ports import fresh_port  # noqa: E402
from tests.helpers.routers import (  # noqa: E402
    ListLog,
    backends,
    bgci_toml,
    fail_without_router_binaries,
)

pytestmark = pytest.mark.e2e

SWITCHES = 30
CONNECTIONS = 8
WALL = 40.0  # seconds one router's run may take, start to stop


@pytest.fixture(scope="module", autouse=True)
def router_binaries() -> None:
    fail_without_router_binaries()


@dataclass
class Client:
    """One keep-alive connection's record: answers per colour, lost requests, reconnections."""

    colours: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    reconnected: int = 0
    errors: list[str] = field(default_factory=list)


class KeepAlive:
    """``connections`` threads, each one http.client connection to ``url`` (loopback)."""

    def __init__(self, url: str, connections: int) -> None:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        assert host.startswith("127."), url
        self.host, self.port = host, int(port)
        self.clients = [Client() for _ in range(connections)]
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + WALL
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True)
                         for c in self.clients]

    def __enter__(self) -> KeepAlive:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while self.sent < count:
            assert time.monotonic() < deadline, f"{self.sent} answers, waiting for {count}"
            time.sleep(0.01)

    def _run(self, client: Client) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                colour = response.getheader(COLOUR_HEADER) or "(none)"
                error = f"HTTP {response.status}" if response.status >= 500 else ""
                if response.will_close:
                    error = error or "the router closed the connection after its answer"
            except (OSError, http.client.HTTPException) as exc:
                colour, error = "", f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.sent += 1
                if error:
                    client.lost += 1
                    client.errors.append(error)
                else:
                    client.colours[colour] = client.colours.get(colour, 0) + 1
            if error:  # never a retry: that request is lost; the next one goes on a new connection
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                client.reconnected += 1
            time.sleep(0.002)
        conn.close()


@contextlib.contextmanager
def managed(tmp_path: Path, kind: str) -> Iterator[Router]:
    """bgci's own ``kind`` router as a local process, in front of two tiny backends."""
    with backends() as colours:
        config_file = tmp_path / "bgci.toml"
        config_file.write_text(bgci_toml(kind, tmp_path / "state",
                                         listen=f"127.0.0.1:{fresh_port()}",
                                         preview=f"127.0.0.1:{fresh_port()}"))
        config = load_config(str(config_file), cwd=tmp_path, environ={})
        router = make_router(config, open_site(config))
        try:
            router.ensure({c: b.address for c, b in colours.items()}, None, ListLog())
            yield router
        finally:
            router.stop(ListLog())


def switch_files(router: Router) -> tuple[Path, list[Path]]:
    """The directory of the router's switch file(s), and the file(s) in it now."""
    if isinstance(router, NginxRouter):
        directory = Path(router.flags)
        return directory, sorted(directory.glob("*.flag"))
    assert isinstance(router, CaddyRouter)
    return Path(router.colour_file).parent, [Path(router.colour_file)]


def assert_only_bgcis_user_may_write(directory: Path, files: list[Path]) -> None:
    for path in (directory, *files):
        info = path.stat()
        assert info.st_uid == os.geteuid(), f"{path} belongs to uid {info.st_uid}"
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        assert not writable, f"{path} is writable by others: {stat.filemode(info.st_mode)}"


@pytest.mark.parametrize("kind", ["nginx", "caddy"])
def test_keep_alive_clients_that_never_retry_lose_nothing_over_many_switches(
        tmp_path: Path, kind: str) -> None:
    began = time.monotonic()
    took = []
    with managed(tmp_path, kind) as router:
        router.switch("blue")
        with KeepAlive(router.live_url, CONNECTIONS) as load:
            load.wait_for(5 * CONNECTIONS)
            for i in range(SWITCHES):
                target = "green" if i % 2 == 0 else "blue"
                started = time.monotonic()
                router.switch(target)  # returns once new connections see it: the confirmation
                took.append(time.monotonic() - started)
                load.wait_for(load.sent + 3 * CONNECTIONS)  # the open connections, after it
            load.stop()
        directory, files = switch_files(router)
        assert_only_bgcis_user_may_write(directory, files)
    wall = time.monotonic() - began
    clients = load.clients
    lost = sum(c.lost for c in clients)
    sent = load.sent
    print(f"\n{kind}: {SWITCHES} switches, {sent} requests on {CONNECTIONS} keep-alive "
          f"connections, {lost} lost; switch() median {sorted(took)[len(took) // 2] * 1000:.1f} ms;"
          f" {wall:.1f}s")
    assert lost == 0, f"{kind} lost {lost} of {sent}: {[e for c in clients for e in c.errors][:5]}"
    assert sum(c.reconnected for c in clients) == 0, "a connection was closed under its client"
    for number, client in enumerate(clients):
        assert set(client.colours) == {"blue", "green"}, \
            f"connection {number} saw {client.colours}: the switch did not reach open connections"
    assert wall < WALL, f"{kind}: {wall:.0f}s for {SWITCHES} switches"


def test_a_switch_directory_someone_else_owns_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ours = tmp_path / "ours"
    switch_dir(str(ours))
    assert stat.S_IMODE(ours.stat().st_mode) == 0o755
    ours.chmod(0o777)  # loosened by someone: bgci's next switch tightens it again
    switch_dir(str(ours))
    assert stat.S_IMODE(ours.stat().st_mode) == 0o755
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o777)
    owner = theirs.stat().st_uid
    monkeypatch.setattr(routers.os, "geteuid", lambda: owner + 1)  # bgci runs as another user
    with pytest.raises(InfraError) as caught:
        switch_dir(str(theirs))
    assert caught.value.exit_code == 3 and f"belongs to uid {owner}," in str(caught.value)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o777, "bgci changed nothing"
