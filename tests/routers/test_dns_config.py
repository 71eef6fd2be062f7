"""router.kind = "dns" and platform.hosts as a user writes them: a working config loads, every
mistake is exit 2 naming the key (and never echoing what may be a secret), the TSIG secret is
masked in every output, and the process platform starts each colour at its own address."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.app import config_secrets
from bgci.config import Config, load_config
from bgci.errors import ConfigError
from bgci.platforms.process import ProcessPlatform
from bgci.redact import Redactor

PLATFORM = """[platform]
kind = "process"
port = 18000
command = "gunicorn app:app -b {host}:{port}"
hosts = { blue = "127.0.0.2", green = "127.0.0.3" }
"""
ROUTER = """[router]
kind = "dns"
managed = false
dns_server = "10.0.0.53:5353"
dns_zone = "example.com"
dns_live_name = "www.example.com"
dns_preview_name = "preview.example.com"
dns_ttl = 30
dns_key_name = "bgci-shop"
dns_key_secret_env = "SHOP_DNS_KEY"
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n' + text)
    return load_config(cwd=tmp_path, environ=env or {})


def with_line(text: str, key: str, line: str | None) -> str:
    """``text`` with the line of ``key`` replaced by ``line`` (None: removed; added when
    ``text`` has no such line)."""
    rows = text.splitlines()
    if line is not None and not any(row.split("=")[0].strip() == key for row in rows):
        rows.append(line)
    out = [(line if row.split("=")[0].strip() == key else row) for row in rows]
    return "\n".join(row for row in out if row is not None) + "\n"


def test_a_dns_config_loads(tmp_path: Path) -> None:
    config = load(tmp_path, PLATFORM + ROUTER)
    assert config.router.kind == "dns" and config.router.dns_ttl == 30
    assert config.router.dns_key_algorithm == "hmac-sha256"
    assert config.platform.hosts == {"blue": "127.0.0.2", "green": "127.0.0.3"}


def test_one_colour_address_from_the_environment_keeps_the_other(tmp_path: Path) -> None:
    config = load(tmp_path, PLATFORM + ROUTER, {"BGCI_PLATFORM_HOSTS_GREEN": "127.0.0.9"})
    assert config.platform.hosts == {"blue": "127.0.0.2", "green": "127.0.0.9"}


@pytest.mark.parametrize(("key", "line", "says"), [
    ("managed", None, "router.managed must be false"),
    ("dns_server", None, "router.dns_server is required"),
    ("dns_server", 'dns_server = "10.0.0.53:99999"', "must be host:port"),
    ("dns_zone", 'dns_zone = "exa mple.com"', "is not a DNS name"),
    ("dns_live_name", 'dns_live_name = "www.example.org"', "is not in router.dns_zone"),
    ("dns_live_name", 'dns_live_name = "badexample.com"', "is not in router.dns_zone"),
    ("dns_preview_name", 'dns_preview_name = "WWW.example.com."', "must differ"),
    ("dns_ttl", "dns_ttl = 86400", "must be 0-3600"),
    ("dns_key_name", None, "router.dns_key_name is required"),
    ("dns_key_algorithm", 'dns_key_algorithm = "hmac-md4"', "not supported"),
    ("dns_key_secret_env", None, "router.dns_key_secret_env is required"),
])
def test_a_dns_mistake_is_exit_2_naming_the_key(tmp_path: Path, key: str, line: str | None,
                                                says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, PLATFORM + with_line(ROUTER, key, line))
    assert caught.value.exit_code == 2
    assert says in str(caught.value) and str(tmp_path / "bgci.toml") in str(caught.value)


def test_a_secret_written_where_its_variable_belongs_is_not_repeated(tmp_path: Path) -> None:
    secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ+Lw=="
    text = with_line(ROUTER, "dns_key_secret_env", f'dns_key_secret_env = "{secret}"')
    with pytest.raises(ConfigError, match="not hold the secret") as caught:
        load(tmp_path, PLATFORM + text)
    assert secret not in str(caught.value)


def test_the_router_addresses_are_not_used_with_dns(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"router\.listen is not used"):
        load(tmp_path, PLATFORM + ROUTER + 'listen = "127.0.0.1:8080"\n')


def test_dns_keys_belong_to_dns_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"router\.dns_zone is not used with router\.kind = 'haproxy'"):
        load(tmp_path, '[router]\ndns_zone = "example.com"\n')


@pytest.mark.parametrize(("platform", "says"), [
    (with_line(PLATFORM, "hosts", None), "needs each colour at an address of its own"),
    (with_line(PLATFORM, "hosts", 'hosts = { blue = "127.0.0.2" }'), "blue and green, each once"),
    (with_line(PLATFORM, "hosts", 'hosts = { blue = "127.0.0.2", red = "127.0.0.3" }'),
     "blue and green, each once"),
    (with_line(PLATFORM, "hosts", 'hosts = { blue = "127.0.0.2", green = "127.0.0.2" }'),
     "two different addresses"),
    (with_line(PLATFORM, "hosts", 'hosts = { blue = "127.0.0.2", green = "::1" }'),
     "of one family"),
    (with_line(PLATFORM, "hosts", 'hosts = { blue = "127.0.0.2", green = "app-green" }'),
     "platform.hosts.green = 'app-green' must be an IP address"),
    (with_line(PLATFORM, "command", 'command = "gunicorn app:app -b 127.0.0.1:{port}"'),
     "must bind the colour's own address, {host}"),
    (with_line(PLATFORM, "kind", 'kind = "docker"'), "platform.hosts is for platform.kind"),
])
def test_a_platform_hosts_mistake_is_exit_2(tmp_path: Path, platform: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, platform + ROUTER)
    assert caught.value.exit_code == 2 and says in str(caught.value)


def test_the_tsig_secret_is_masked_whatever_its_variable_is_called(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "dGhlIHNoYXJlZCBUU0lHIHNlY3JldCBvZiB0aGUgem9uZQ=="
    monkeypatch.setenv("SHOP_DNS_KEY", secret)  # a name that looks like no secret of its own
    config = load(tmp_path, PLATFORM + ROUTER)
    redactor = Redactor({})
    redactor.add(config_secrets(config, set()))
    assert redactor.text(f"update refused with {secret}") == "update refused with ***"


def test_each_colour_listens_at_its_own_address_on_platform_port(tmp_path: Path) -> None:
    platform = ProcessPlatform(load(tmp_path, PLATFORM + ROUTER))
    assert platform.spec().port == 18000  # both colours: one port, two addresses
    without = ProcessPlatform(load(tmp_path, with_line(PLATFORM, "hosts", None).replace(
        "{host}", "127.0.0.1")))
    assert without.spec().port == 0  # each start takes a free port of 127.0.0.1, as before


def test_a_dns_server_given_by_name_is_reached_at_what_its_name_resolves_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bgci.errors import InfraError
    from bgci.routers import dns_records

    key = dns_records.TsigKey("bgci-shop", "hmac-sha256", "SHOP_DNS_KEY")
    asked: list[str] = []

    def getaddrinfo(host: str, *args: object, **kw: object) -> list[tuple[object, ...]]:
        asked.append(host)
        if host == "ns1.example.com":
            return [(2, 2, 17, "", ("192.0.2.53", 53))]
        raise OSError("Name or service not known")

    monkeypatch.setattr(dns_records.socket, "getaddrinfo", getaddrinfo)
    assert dns_records.Zone("192.0.2.1", 53, "example.com.", key).ip == "192.0.2.1"
    assert dns_records.Zone("ns1.example.com", 53, "example.com.", key).ip == "192.0.2.53"
    with pytest.raises(InfraError, match=r"ns9\.example\.com port 53 cannot be found"):
        _ = dns_records.Zone("ns9.example.com", 53, "example.com.", key).ip
    assert asked == ["ns1.example.com", "ns9.example.com"]
