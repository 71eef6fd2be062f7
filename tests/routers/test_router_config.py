"""The [router] keys that attach bgci to a router the user runs: each kind takes its own keys,
a missing one or one of another kind is a configuration error (exit 2) that names the key. And
what the nginx and Caddy routers generate, read back as the colour it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.config import load_config
from bgci.errors import ConfigError
from bgci.registry import ROUTERS
from bgci.routers.caddy_conf import render_servers, route_colour
from bgci.routers.nginx_conf import render_main, render_site, site_facts


def load(tmp_path: Path, router: str) -> None:
    (tmp_path / "bgci.toml").write_text(f'app = "shop"\n[router]\n{router}\n')
    load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path, environ={})


ATTACHED = {
    "haproxy": 'admin_socket = "/run/haproxy/admin.sock"\nmap_file = "/etc/haproxy/bgci-shop.map"',
    "traefik": 'config_dir = "/etc/traefik/dynamic"\nadmin_url = "http://127.0.0.1:8080"',
    "nginx": 'include_file = "/etc/nginx/conf.d/bgci-shop.conf"',
    "caddy": 'admin_url = "unix//run/caddy/admin.sock"',
}


@pytest.mark.parametrize("kind", sorted(ATTACHED))
def test_each_kind_attaches_with_its_own_keys(tmp_path: Path, kind: str) -> None:
    load(tmp_path, f'kind = "{kind}"\nmanaged = false\n{ATTACHED[kind]}')


@pytest.mark.parametrize("kind", sorted(ATTACHED))
def test_a_missing_attach_key_is_named(tmp_path: Path, kind: str) -> None:
    required = ROUTERS[kind].attach
    for key in required:
        kept = "\n".join(line for line in ATTACHED[kind].splitlines() if not line.startswith(key))
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, f'kind = "{kind}"\nmanaged = false\n{kept}')
        assert caught.value.exit_code == 2
        assert f"router.{key} is required" in str(caught.value)


@pytest.mark.parametrize(("kind", "line", "key"), [
    ("nginx", 'admin_socket = "/run/haproxy.sock"', "admin_socket"),
    ("haproxy", 'include_file = "x.conf"', "include_file"),
    ("caddy", 'config_dir = "dyn"', "config_dir"),
    ("traefik", 'reload_command = "true"', "reload_command"),
])
def test_a_key_of_another_kind_is_named(tmp_path: Path, kind: str, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f'kind = "{kind}"\nmanaged = false\n{ATTACHED[kind]}\n{line}')
    assert caught.value.exit_code == 2 and f"router.{key} is not used" in str(caught.value)


def test_attach_keys_are_refused_for_a_managed_router(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"router\.include_file is not used .* managed = true"):
        load(tmp_path, 'kind = "nginx"\ninclude_file = "x.conf"')


@pytest.mark.parametrize("kind", ["haproxy", "traefik", "caddy"])
def test_client_keepalive_is_for_nginx_only(tmp_path: Path, kind: str) -> None:
    load(tmp_path, 'kind = "nginx"\nclient_keepalive = false')
    with pytest.raises(ConfigError, match=r"router\.client_keepalive is only for"):
        load(tmp_path, f'kind = "{kind}"\nclient_keepalive = false')


def test_the_admin_url_must_be_http_or_a_unix_socket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"router\.admin_url .* must be an http:// URL"):
        load(tmp_path, 'kind = "caddy"\nmanaged = false\nadmin_url = "127.0.0.1:2019"')


def test_the_nginx_site_takes_the_colours_from_the_flags_and_names_its_generation() -> None:
    backends = {"blue": "127.0.0.1:4001", "green": "127.0.0.1:4002"}
    site = render_site("my-shop", backends, flags="/r/live", live_listen="127.0.0.1:8080",
                       preview_listen="127.0.0.1:8081", keepalive=False)
    facts = site_facts(site)
    assert "live" not in facts and len(facts["generation"]) == 12
    # no colour is written in the site: a switch changes the flags, not the file
    assert site == render_site("my-shop", dict(reversed(backends.items())), flags="/r/live",
                               live_listen="127.0.0.1:8080", preview_listen="127.0.0.1:8081",
                               keepalive=False)
    assert site.count("if (-f /r/live/green.flag) {") == 2 and "keepalive_timeout 0;" in site
    assert site.count(f'{facts["generation"]}\\n";') == 2, "the colour endpoint of each address"
    assert site.count("proxy_pass http://bgci_my_shop_$bgci_") == 2
    assert "return 503" in site and "no colour is live here yet" in site
    only_blue = render_site("my-shop", {"blue": "127.0.0.1:4001"}, flags="/r/live",
                            live_listen=":8080", preview_listen=":8081")
    assert "bgci: green is not running" in only_blue and "upstream bgci_my_shop_green" not in only_blue
    nothing = render_site("my-shop", {}, flags="/r/live", live_listen=":8080", preview_listen=":8081")
    assert "listen 8080;" in nothing and "upstream" not in nothing and "proxy_pass" not in nothing
    assert "worker_shutdown_timeout 3s;" in render_main("/p", "/p/bgci.conf", 2.6)
    assert "user root;" in render_main("/p", "/p/bgci.conf", 2, user="root")
    assert "user " not in render_main("/p", "/p/bgci.conf", 2)


def test_caddy_routes_take_the_colour_and_its_address_from_files() -> None:
    servers = render_servers("shop", "/r/live", listen={"live": ":8080", "preview": ":8081"},
                             drain=3)
    live = servers["bgci-shop-live"]["routes"][0]
    preview = servers["bgci-shop-preview"]["routes"][0]
    assert live["@id"] == "bgci-shop-live" and route_colour(live) is None, "no colour in the config"
    read, _, sub = live["handle"]
    assert read == {"handler": "vars", "bgci_live": "{file./r/live/colour}"}, "read once a request"

    def outputs(route: dict) -> dict[str, list[str]]:
        table = route["handle"][1]
        return {**{m["input"]: m["outputs"] for m in table["mappings"]}, "": table["defaults"]}

    # the file's word -> (the colour this address serves, the file of its address)
    blue, green = "{file./r/live/blue.addr}", "{file./r/live/green.addr}"
    assert outputs(live) == {"blue": ["blue", blue], "green": ["green", green], "": ["none", ""]}
    assert outputs(preview) == {"blue": ["green", green], "green": ["blue", blue],
                                "": ["blue", blue]}
    # an empty address file: that colour runs nothing, a 503 naming it
    assert sub["routes"][2]["match"] == [{"vars": {"{bgci_address}": [""]}}]
    assert sub["routes"][2]["handle"][0]["status_code"] == 503
    proxy = sub["routes"][-1]["handle"][0]
    assert proxy["upstreams"] == [{"dial": "{bgci_address}"}]
    assert proxy["headers"]["response"]["set"] == {"X-Bgci-Color": ["{bgci_colour}"]}
    assert proxy["stream_close_delay"] == "3s"
    assert sub["routes"][0]["match"] == [{"path": ["/.bgci/colour"]}]
    old = {"handle": [{"handler": "reverse_proxy", "headers": {"response": {"set": {
        "X-Bgci-Color": ["green"]}}}}]}
    assert route_colour(old) == "green", "a route an earlier bgci wrote names its colour"
