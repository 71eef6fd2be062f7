"""The DNS router against a real authoritative server (BIND's named, on loopback, with a test
zone and a TSIG key): a switch moves the live and the preview name in one update, the live
colour is read back from the server, where a new client goes is resolved there, a dry run
changes nothing, and a refused update (a wrong key, a key the zone does not allow, no secret, a
server that does not answer) raises the error of its exit code with the zone unchanged.

The switch under load, through a caching resolver, with the real CLI: tests/e2e/test_e2e_dns.py.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import dns.name  # noqa: E402
import dns.query  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402

from bgci.config import load_config  # noqa: E402
from bgci.errors import ConfigError, InfraError, Refused  # noqa: E402
from bgci.log import StderrLog  # noqa: E402
from bgci.ports import Router  # noqa: E402
from bgci.registry import make_router, open_site  # noqa: E402
from bgci.routers import dns_records  # noqa: E402
from tests.helpers.dnsserver import (  # noqa: E402
    KEY_NAME,
    ZONE,
    Bind,
    free_port,
    missing,
    new_secret,
    query,
    serial,
)

pytestmark = pytest.mark.e2e

HOSTS = {"blue": "127.0.0.2", "green": "127.0.0.3"}
PORT = 18000
BACKENDS = {"blue": f"127.0.0.2:{PORT}", "green": f"127.0.0.3:{PORT}"}
SECRET_ENV = "BGCI_TEST_DNS_KEY_SECRET"


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    """Fail, never skip, when named is missing: a skipped router test proves nothing."""
    problem = missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    server = Bind(tmp_path_factory.mktemp("named"), new_secret())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def router_for(tmp_path: Path, bind: Bind, monkeypatch: pytest.MonkeyPatch, *, zone: str = ZONE,
               key: str = KEY_NAME, secret: str | None = None,
               server: str = "") -> tuple[Router, dict[str, str]]:
    """A DNS router for two fresh names of ``zone`` on ``bind``; the names it owns."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:6]
    names = {"live": f"www-{suffix}.{zone}", "preview": f"preview-{suffix}.{zone}"}
    (tmp_path / "bgci.toml").write_text(f"""
app = "dns-{suffix}"
[platform]
kind = "process"
port = {PORT}
command = "gunicorn app:app -b {{host}}:{{port}}"
state_dir = "{tmp_path / 'state'}"
hosts = {{ blue = "{HOSTS['blue']}", green = "{HOSTS['green']}" }}
[router]
kind = "dns"
managed = false
dns_server = "{server or f'127.0.0.1:{bind.port}'}"
dns_zone = "{zone}"
dns_live_name = "{names['live']}"
dns_preview_name = "{names['preview']}"
dns_ttl = 2
dns_key_name = "{key}"
dns_key_secret_env = "{SECRET_ENV}"
""", encoding="utf-8")
    monkeypatch.setenv(SECRET_ENV, bind.secret if secret is None else secret)
    config = load_config(cwd=tmp_path, environ={})
    return make_router(config, open_site(config)), names


def records(bind: Bind, names: dict[str, str]) -> dict[str, list[str]]:
    return {role: query(bind.address, name) for role, name in names.items()}


def by_hand(bind: Bind, name: str, address: str) -> None:
    """Point ``name`` somewhere else, as someone with the key could."""
    keyring = dns.tsigkeyring.from_text({KEY_NAME: bind.secret})
    update = dns.update.UpdateMessage(ZONE, keyring=keyring, keyname=dns.name.from_text(KEY_NAME))
    update.replace(name + ".", 2, "A", address)
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=3).rcode() == 0


def test_a_switch_moves_both_names_in_one_update(tmp_path: Path, bind: Bind,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    router, names = router_for(tmp_path, bind, monkeypatch)
    log = StderrLog(0)
    router.ensure(BACKENDS, None, log)  # nothing live yet: the preview name on blue
    assert records(bind, names) == {"live": [], "preview": ["127.0.0.2"]}
    assert router.live() is None
    assert "has no A record" in router.reach(router.live_url).problem

    before = serial(bind.address)
    router.switch("blue")
    assert records(bind, names) == {"live": ["127.0.0.2"], "preview": ["127.0.0.3"]}
    assert serial(bind.address) == before + 1, "both names must move in one update"
    assert router.live() == "blue"

    router.switch("green")
    assert records(bind, names) == {"live": ["127.0.0.3"], "preview": ["127.0.0.2"]}
    assert serial(bind.address) == before + 2
    assert router.live() == "green"
    live = router.reach(router.live_url)
    assert (live.url, live.colour, live.problem) == (f"http://127.0.0.3:{PORT}", "green", "")
    assert live.host == f"{names['live']}:{PORT}"  # what a client of the name sends
    preview = router.reach(router.preview_url)
    assert (preview.url, preview.colour) == (f"http://127.0.0.2:{PORT}", "blue")
    assert router.live_url == f"http://{names['live']}:{PORT}"
    assert router.stale_for() == 3.0  # the switch stage waits the TTL out, and a second

    router.ensure(BACKENDS, "green", log)  # in sync: no update
    assert serial(bind.address) == before + 2


def test_a_dry_run_shows_the_update_and_changes_nothing(tmp_path: Path, bind: Bind,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    router, names = router_for(tmp_path, bind, monkeypatch)
    router.ensure(BACKENDS, None, StderrLog(0))
    router.switch("blue")
    before = serial(bind.address)
    plan = router.describe_switch("green")
    assert f"{names['live']}. A: 127.0.0.2 -> 127.0.0.3 (TTL 2)" in plan
    assert f"{names['preview']}. A: 127.0.0.3 -> 127.0.0.2 (TTL 2)" in plan
    assert "waits out the TTL and a second (3s)" in plan and bind.secret not in plan
    assert serial(bind.address) == before and router.live() == "blue"


@pytest.mark.parametrize("wrong", ["secret", "key name", "zone"])
def test_a_refused_update_is_exit_3_and_changes_nothing(tmp_path: Path, bind: Bind,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        wrong: str) -> None:
    good, names = router_for(tmp_path / "good", bind, monkeypatch)
    good.ensure(BACKENDS, None, StderrLog(0))
    good.switch("blue")
    if wrong == "zone":  # a zone on the same server that does not let this key update it
        router, names = router_for(tmp_path, bind, monkeypatch, zone="other.test")
    else:
        router, _ = router_for(tmp_path, bind, monkeypatch,
                               secret=new_secret() if wrong == "secret" else None,
                               key="nobody" if wrong == "key name" else KEY_NAME)
        router.names = {role: name + "." for role, name in names.items()}  # the same two names
    before = {name: query(bind.address, name) for name in names.values()}
    soa = serial(bind.address)
    with pytest.raises(InfraError) as failed:
        router.switch("green")
    assert failed.value.exit_code == 3
    message = str(failed.value)
    assert f"127.0.0.1 port {bind.port}" in message and "nothing was changed" in message
    assert {"secret": "TSIG key", "key name": "TSIG key", "zone": "REFUSED"}[wrong] in message
    assert bind.secret not in message
    assert {name: query(bind.address, name) for name in names.values()} == before
    assert serial(bind.address) == soa


def test_no_secret_in_the_environment_is_a_config_error(tmp_path: Path, bind: Bind,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    router, names = router_for(tmp_path, bind, monkeypatch, secret="")
    soa = serial(bind.address)
    with pytest.raises(ConfigError, match=SECRET_ENV):
        router.switch("blue")
    monkeypatch.setenv(SECRET_ENV, "not base64!")
    with pytest.raises(ConfigError, match="must be base64") as failed:
        router.switch("blue")
    assert "not base64!" not in str(failed.value)
    assert serial(bind.address) == soa and records(bind, names) == {"live": [], "preview": []}


def test_a_server_that_does_not_answer_is_exit_3(tmp_path: Path, bind: Bind,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dns_records, "TIMEOUT", 0.3)
    router, _ = router_for(tmp_path, bind, monkeypatch, server=f"127.0.0.1:{free_port()}")
    with pytest.raises(InfraError, match="does not answer"):
        router.live()
    assert "does not answer" in router.reach(router.live_url).problem  # a probe that fails
    with pytest.raises(InfraError, match="does not take updates"):
        router.switch("blue")


def test_a_record_pointed_elsewhere_is_seen_and_put_back(tmp_path: Path, bind: Bind,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    router, names = router_for(tmp_path, bind, monkeypatch)
    router.ensure(BACKENDS, None, StderrLog(0))
    router.switch("blue")
    by_hand(bind, names["live"], "10.9.9.9")
    assert router.live() is None  # neither colour: the stage heals it from the state
    assert "10.9.9.9, the address of neither colour" in router.reach(router.live_url).problem
    router.switch("blue")
    assert records(bind, names)["live"] == ["127.0.0.2"] and router.live() == "blue"


def test_bgci_never_runs_or_stops_the_dns_server(tmp_path: Path, bind: Bind,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    router, names = router_for(tmp_path, bind, monkeypatch)
    router.ensure(BACKENDS, None, StderrLog(0))
    router.switch("green")
    lines: list[str] = []
    log: Any = StderrLog(0)
    log.info = lines.append
    router.stop(log)
    assert "leaves" in lines[0] and records(bind, names)["live"] == ["127.0.0.3"]
    with pytest.raises(Refused):
        router.reboot(BACKENDS, "green", log)
    assert "stay there" in router.disconnect("blue") and router.inflight("blue") == 0
    assert router.changes() == []
