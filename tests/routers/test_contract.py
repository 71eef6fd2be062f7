"""One contract for every router bgci switches: HAProxy, Traefik, nginx and Caddy, each managed by
bgci (a local process, as on the process platform) and attached (``router.managed = false``: a
router "the user runs", with a site of the user's own beside bgci's part), against the real
binaries, in front of two tiny local backends.

The contract: switch and rollback under a concurrent keep-alive request loop lose no request
(HAProxy, Traefik and nginx, whose switch flips a flag file and reloads nothing, for any client;
Caddy, whose every change is a reload that re-creates its listening sockets, for a client that
retries: docs/routers.md has what each kind of client loses with each, measured); preview reaches
only the idle colour; a router that is down or refuses the change raises InfraError (exit 3)
and live traffic stays where it was; the user's own config survives; a dry run changes nothing;
the live colour is read back from the router after a restart of the router and of bgci; after
switch.drain what is still open to the old colour is closed where the router allows it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bgci.config import load_config, valid_app  # noqa: E402
from bgci.errors import InfraError  # noqa: E402
from bgci.metrics import add, quantile, since  # noqa: E402
from bgci.ports import Router, Traffic  # noqa: E402
from bgci.registry import make_router, open_site  # noqa: E402
from bgci.routers import traefik  # noqa: E402
from bgci.routers.caddy import CaddyRouter  # noqa: E402
from tests.helpers.ports import fresh_port  # noqa: E402
from tests.helpers.routers import (  # noqa: E402
    USERS_SITE,
    Backend,
    ListLog,
    Load,
    Stream,
    UserRouter,
    backends,
    bgci_toml,
    fail_without_router_binaries,
    fresh_colours,
    get,
    tree,
    user_router,
)

pytestmark = pytest.mark.e2e

KINDS = ("haproxy", "traefik", "nginx", "caddy")
# the request loop of the zero-loss contract, per router: (client, router.* settings)
ZERO_LOSS = {kind: ("naive", None) for kind in KINDS}
MODES = ("managed", "attached")


@pytest.fixture(scope="module", autouse=True)
def router_binaries() -> None:
    fail_without_router_binaries()


@dataclass
class Rig:
    """A router under test: bgci's Router object, the two colour backends, the user's router."""

    kind: str
    mode: str
    root: Path
    config_file: Path
    router: Router
    addresses: dict[str, str]
    user: UserRouter | None

    def fresh(self) -> Router:
        """A new Router object from the same config: what the next bgci process sees."""
        config = load_config(str(self.config_file), cwd=self.root, environ={})
        return make_router(config, open_site(config))

    def stop_router(self) -> None:
        if self.user is not None:
            self.user.stop()
        else:
            self.router.stop(ListLog())

    def start_router(self) -> None:
        """Bring the router back the way its owner would: the user starts theirs, bgci its own."""
        if self.user is not None:
            self.user.start()
        self.router.ensure(self.addresses, None, ListLog())

    def state_files(self) -> dict[str, bytes]:
        """Every file that could hold routing: bgci's router dir, or the user's whole tree."""
        return tree(self.root / ("user" if self.user is not None else "state"))


@contextlib.contextmanager
def rig(tmp_path: Path, kind: str, mode: str, extra: dict[str, Any] | None = None,
        ensure: bool = True, app: str = "shop", **user_options: Any) -> Iterator[Rig]:
    with contextlib.ExitStack() as stack:
        colours = stack.enter_context(backends())
        user = None
        if mode == "attached":
            if kind == "traefik":
                users = Backend("users", body=USERS_SITE)
                stack.callback(users.close)
                user_options.setdefault("users_backend", users.address)
            user = user_router(kind, tmp_path / "user", app=app, **user_options)
            stack.callback(user.stop)
            user.start()
            listen, preview = user.listen, user.preview
        else:
            listen, preview = (f"127.0.0.1:{fresh_port()}" for _ in range(2))
        config_file = tmp_path / "bgci.toml"
        config_file.write_text(bgci_toml(kind, tmp_path / "state", listen=listen, preview=preview,
                                         attach=user.config if user else None, extra=extra,
                                         app=app))
        config = load_config(str(config_file), cwd=tmp_path, environ={})
        router = make_router(config, open_site(config))
        stack.callback(router.stop, ListLog())
        made = Rig(kind, mode, tmp_path, config_file, router,
                   {c: b.address for c, b in colours.items()}, user)
        if ensure:
            router.ensure(made.addresses, None, ListLog())
        yield made


def only(url: str, count: int = 10) -> str:
    """The one colour that answers ``count`` new connections to ``url`` (fails on a mix)."""
    seen = fresh_colours(url, count)
    assert len(seen) == 1, f"{url} answered with a mix: {seen}"
    return next(iter(seen))


def switch_under_load(r: Rig, *, client: str) -> dict[str, Any]:
    """blue live; then switch to green and roll back to blue under the request loop."""
    r.router.switch("blue")
    with Load(r.router.live_url, connections=4, client=client, hard_cap=60) as load:
        load.wait_for(100)
        for target in ("green", "blue"):  # the switch, then the rollback
            r.router.switch(target)
            assert only(r.router.live_url) == target
            assert only(r.router.preview_url) == ("blue" if target == "green" else "green")
            sent = load.tally.sent
            load.wait_for(sent + 100)  # keep-alive connections are used after the change too
        tally = load.stop()
    return {"sent": tally.sent, "lost": tally.lost, "by_colour": tally.by_colour,
            "errors": tally.errors, "retried": tally.retried}


# -- switch and rollback under load --------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_switch_and_rollback_under_load_lose_no_request(tmp_path: Path, kind: str,
                                                        mode: str) -> None:
    client, extra = ZERO_LOSS[kind]
    with rig(tmp_path, kind, mode, extra) as r:
        seen = switch_under_load(r, client=client)
    assert seen["lost"] == 0, f"{kind} ({mode}) lost requests of a {client} client: {seen}"
    assert seen["by_colour"].get("green", 0) > 0 and seen["by_colour"].get("blue", 0) > 0, seen


# -- names -----------------------------------------------------------------------------------
LONGEST_APP = "x" * 39 + "9"  # config.py: app is 1-40 of [a-z0-9-]


@pytest.mark.parametrize("kind", KINDS)
def test_the_longest_valid_app_name_works(tmp_path: Path, kind: str) -> None:
    """Every name `app` may have names what bgci puts in the router (variables, backends,
    servers, routes): the longest one starts the router and switches it, managed and attached."""
    assert valid_app(LONGEST_APP) and not valid_app(LONGEST_APP + "x")
    for mode in MODES:
        (tmp_path / mode).mkdir()
        with rig(tmp_path / mode, kind, mode, app=LONGEST_APP) as r:
            for live, idle in (("green", "blue"), ("blue", "green")):
                r.router.switch(live)  # type: ignore[arg-type]
                assert r.fresh().live() == live, (kind, mode)
                assert only(r.router.live_url) == live and only(r.router.preview_url) == idle


# -- preview ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_preview_reaches_only_the_idle_colour(tmp_path: Path, kind: str, mode: str) -> None:
    with rig(tmp_path, kind, mode) as r:
        assert r.router.live() is None
        status, colour, _ = get(r.router.live_url)
        assert (status, colour) == (503, None)  # nothing is live before the first switch
        assert only(r.router.preview_url) == "blue"
        for live, idle in (("green", "blue"), ("blue", "green")):
            r.router.switch(live)  # type: ignore[arg-type]
            assert r.router.live() == live
            assert only(r.router.live_url, 20) == live
            assert only(r.router.preview_url, 20) == idle
            assert get(r.router.preview_url)[2] == f"I am {idle}"


# -- a router that is down or refuses --------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_router_that_is_down_changes_nothing(tmp_path: Path, kind: str, mode: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traefik, "APPLY_TIMEOUT", 2.0)
    with rig(tmp_path, kind, mode) as r:
        r.router.switch("blue")
        r.stop_router()
        with pytest.raises(InfraError) as caught:
            r.router.switch("green")
        assert caught.value.exit_code == 3
        r.start_router()
        assert r.router.live() == "blue" and r.fresh().live() == "blue"
        assert only(r.router.live_url) == "blue"


REFUSALS = [  # (kind, mode, what makes the router refuse)
    ("haproxy", "managed", "bad address"), ("haproxy", "attached", "bad address"),
    ("nginx", "managed", "bad address"), ("nginx", "attached", "user's config broken"),
    ("traefik", "attached", "file provider not watching"),
    ("caddy", "attached", "preview address taken"),
]


@pytest.mark.parametrize(("kind", "mode", "why"), REFUSALS)
def test_a_change_the_router_refuses_leaves_live_traffic_where_it_was(
        tmp_path: Path, kind: str, mode: str, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traefik, "APPLY_TIMEOUT", 2.0)
    if why == "preview address taken":
        user = user_router(kind, tmp_path / "user")
        doc = json.loads((user.root / "caddy.json").read_text())
        doc["apps"]["http"]["servers"]["users-site"]["listen"].append(user.preview)
        (user.root / "caddy.json").write_text(json.dumps(doc))
        with contextlib.ExitStack() as stack:
            user.start()
            stack.callback(user.stop)
            (tmp_path / "bgci.toml").write_text(bgci_toml(kind, tmp_path / "state", listen=user.listen,
                                                         preview=user.preview, attach=user.config))
            config = load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path, environ={})
            router = make_router(config, open_site(config))
            before = user.snapshot()
            with pytest.raises(InfraError) as caught:
                router.ensure({"blue": "127.0.0.1:1"}, None, ListLog())
            assert caught.value.exit_code == 3 and "refused" in str(caught.value)
            assert user.snapshot() == before
            assert get(f"http://{user.other}/")[2] == USERS_SITE  # the user's site still answers
            assert router.live() is None
        return
    unwatched = why == "file provider not watching"
    setup = rig(tmp_path, kind, mode, watch=False, ensure=False) if unwatched else rig(tmp_path, kind, mode)
    with setup as r:
        if unwatched:
            _start_unwatched_on_blue(r)
        else:
            r.router.switch("blue")
        if why == "user's config broken":
            assert r.user is not None
            (r.user.root / "sites" / "users-site.conf").write_text("server { oops\n")
        before = r.state_files()
        with pytest.raises(InfraError) as caught:
            if why == "bad address":
                r.router.set_backend("green", BAD_ADDRESS[kind])
            elif why == "user's config broken":  # a new address: the one change that reloads
                r.router.set_backend("green", "127.0.0.1:1")
            else:
                r.router.switch("green")
        assert caught.value.exit_code == 3
        assert r.state_files() == before  # bgci put back what it had written
        assert r.router.live() == "blue" and r.fresh().live() == "blue"
        assert only(r.router.live_url) == "blue"


# an address each router rejects: HAProxy takes IPs only at runtime, nginx -t checks ports
BAD_ADDRESS = {"haproxy": "bogus.invalid:8000", "nginx": "127.0.0.1:99999"}


def _start_unwatched_on_blue(r: Rig) -> None:
    """Traefik without a watch reads its files at start only: the user restarts it on blue."""
    assert r.user is not None
    config_dir = Path(r.user.config["config_dir"])
    doc = traefik.render_dynamic("shop", r.addresses, "blue", ("web", "web-preview"))  # type: ignore[arg-type]
    (config_dir / "bgci-shop.yml").write_bytes(traefik.dump(doc))
    r.user.stop()
    r.user.start()
    deadline = time.monotonic() + 10
    while r.router.live() != "blue":
        assert time.monotonic() < deadline, "Traefik did not load the file it starts from"
        time.sleep(0.1)
    r.router.ensure(r.addresses, None, ListLog())  # nothing to change: the file is what bgci would write


# -- the user's own config -------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_an_attached_router_keeps_the_users_own_config(tmp_path: Path, kind: str) -> None:
    with rig(tmp_path, kind, "attached") as r:
        assert r.user is not None
        files = r.user.snapshot()
        users_site = get(f"http://{r.user.other}/")
        assert users_site[2] == USERS_SITE
        caddy_before = _caddy_users_server(r) if kind == "caddy" else None
        r.router.switch("blue")
        r.router.switch("green")
        r.router.set_backend("blue", None)
        assert only(r.router.live_url) == "green"
        assert r.user.snapshot() == files  # not one byte of the user's files changed
        assert get(f"http://{r.user.other}/") == users_site
        if kind == "caddy":
            assert _caddy_users_server(r) == caddy_before
        owned = {"haproxy": [r.user.config.get("map_file")],
                 "traefik": [f"{r.user.config.get('config_dir')}/bgci-shop.yml"],
                 "nginx": [r.user.config.get("include_file")], "caddy": []}[kind]
        if kind == "nginx":  # and the flags, in a hidden directory beside it
            site = Path(r.user.config["include_file"])
            owned += [str(site.with_name(f".{site.name}.live") / "green.flag")]
        caddys_own = ("config/caddy/", "data/caddy/")  # Caddy's autosave and instance data
        written = {str(r.user.root / p) for p in tree(r.user.root)
                   if not p.startswith(caddys_own)} - set(files)
        assert written <= set(owned), f"bgci wrote files it does not own: {written - set(owned)}"


def test_an_attached_caddy_that_does_not_read_bgcis_files_gets_its_servers_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bgci's routes read the live colour from bgci's files: a Caddy that does not see them (on
    another machine, as a user that cannot read them) is found out the moment they are put in,
    and its servers are put back as they were (exit 3)."""
    with rig(tmp_path, "caddy", "attached", ensure=False) as r:
        assert r.user is not None
        before = _caddy_servers(r)
        # what such a Caddy would not see: bgci's files say green, the Caddy serves none
        monkeypatch.setattr(CaddyRouter, "_file_word", lambda self: "green")
        with pytest.raises(InfraError) as caught:
            r.router.ensure(r.addresses, None, ListLog())
        assert caught.value.exit_code == 3 and "cannot read them" in str(caught.value)
        assert _caddy_servers(r) == before, "the user's servers were not put back"
        assert get(f"http://{r.user.other}/")[2] == USERS_SITE


def _caddy_servers(r: Rig) -> Any:
    assert r.user is not None
    conn = http.client.HTTPConnection(r.user.config["admin_url"].split("://")[1], timeout=10)
    try:
        conn.request("GET", "/config/apps/http/servers")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _caddy_users_server(r: Rig) -> Any:
    assert r.user is not None
    conn = http.client.HTTPConnection(r.user.config["admin_url"].split("://")[1], timeout=10)
    try:
        conn.request("GET", "/config/apps/http/servers/users-site")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


# -- dry run -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_dry_run_shows_the_change_and_makes_none(tmp_path: Path, kind: str, mode: str) -> None:
    with rig(tmp_path, kind, mode) as r:
        r.router.switch("blue")
        before = r.state_files()
        plan = r.router.describe_switch("green")
        assert r.state_files() == before
        assert r.router.live() == "blue" and only(r.router.live_url) == "blue"
        changed = [line for line in plan.splitlines() if line.startswith("+") and "green" in line]
        if kind == "haproxy":
            assert "set map" in plan and "live green" in plan
        else:
            assert changed, f"no added line names green:\n{plan}"
        if kind == "nginx":
            assert "syntax is ok" in plan and "test is successful" in plan


# -- restarts --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_live_colour_is_read_back_after_a_restart(tmp_path: Path, kind: str,
                                                      mode: str) -> None:
    with rig(tmp_path, kind, mode) as r:
        r.router.switch("green")
        assert r.fresh().live() == "green"  # bgci restarted: asks the router
        r.stop_router()
        with pytest.raises(InfraError):
            r.fresh().live()
        r.start_router()
        assert r.fresh().live() == "green"
        assert only(r.router.live_url) == "green" and only(r.router.preview_url) == "blue"


# -- what is left on the old colour after switch.drain ---------------------------------------
# (kind, path) -> closed after switch.drain? Where a router cannot, the test holds it to what it
# says (docs/routers.md states it): Traefik closes nothing per service; Caddy closes upgraded
# streams (stream_close_delay) but lets a long plain response run to its end; nginx, whose switch
# reloads nothing (a reload would cut keep-alive clients), leaves both open to the old colour.
CLOSES = {("haproxy", "/stream"): True, ("haproxy", "/upgrade"): True,
          ("nginx", "/stream"): False, ("nginx", "/upgrade"): False,
          ("caddy", "/stream"): False, ("caddy", "/upgrade"): False,
          ("traefik", "/stream"): False, ("traefik", "/upgrade"): False}


@pytest.mark.parametrize("path", ["/stream", "/upgrade"])
@pytest.mark.parametrize("kind", KINDS)
def test_what_stays_open_to_the_old_colour_is_closed_after_the_drain(tmp_path: Path, kind: str,
                                                                     path: str) -> None:
    with rig(tmp_path, kind, "managed") as r:
        r.router.switch("blue")
        stream = Stream(r.router.live_url, path)
        with contextlib.closing(stream):
            stream.wait_lines(3)
            r.router.switch("green")
            assert only(r.router.live_url) == "green"
            assert stream.open, "the switch itself cut the stream to the old colour"
            time.sleep(2.0)  # switch.drain in bgci_toml
            said = r.router.disconnect("blue")
            ended = stream.wait_end(5.0)
            assert stream.lines[0].startswith("blue ")
        expected = CLOSES[(kind, path)]
        assert ended == expected, f"{kind} {path}: closed {ended}, expected {expected}; it says: {said}"
        if not expected:
            assert "stay" in said, said  # and the router says so


# -- the router's own counters (the bake's real traffic) -----------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_the_routers_counters_count_each_colours_answers(tmp_path: Path, kind: str) -> None:
    """What each colour answered through the live address, 5xx apart, as the bake reads it:
    HAProxy's show stat, Traefik's and Caddy's metrics, nginx's access log; read between the
    steps as the bake's watch reads it every 100 ms."""
    with rig(tmp_path, kind, "managed") as r:
        r.router.switch("blue")
        first = r.router.counters()
        assert first is not None, f"{kind}: no counters"
        for i in range(40):
            assert get(r.router.live_url + ("/status/500" if i % 4 == 0 else "/"))[1] == "blue"
        middle = r.router.counters()
        r.router.switch("green")
        for _ in range(20):
            assert get(r.router.live_url + "/")[1] == "green"
        last = r.router.counters()
        assert middle is not None and last is not None
    blue = since(first.colours.get("blue"), last.colours["blue"])
    green = add(since(first.colours.get("green"), middle.colours.get("green", Traffic())),
                since(middle.colours.get("green"), last.colours["green"]))
    # nginx answers the colour endpoint itself (uncounted); HAProxy and Traefik count bgci's
    # own switch confirmations through the live address too: at most a few more
    assert (blue.errors, green.errors) == (10, 0), (kind, blue, green)
    assert 40 <= blue.requests <= 45 and 20 <= green.requests <= 30, (kind, blue, green, last)
    if kind == "haproxy":
        assert blue.buckets == () and blue.mean_ms is not None, "HAProxy keeps a mean only"
    else:
        assert blue.buckets and blue.buckets[-1][1] == blue.requests, (kind, blue)
        assert quantile(0.95, blue.buckets) is not None
