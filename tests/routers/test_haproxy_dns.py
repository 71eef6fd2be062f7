"""HAProxy's config for colours named by DNS (the swarm platform): a server template per colour
that HAProxy's resolver fills, accepted by the real ``haproxy -c``; fixed addresses unchanged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bgci.routers.haproxy import render_config

NAMES = {"blue": "shop-blue:8000", "green": "shop-green:8000"}


def haproxy_check(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).is_file():
        pytest.fail("haproxy is not installed: run `bash scripts/test-env.sh` as root first",
                    pytrace=False)
    (tmp_path / "colour.map").write_text("live blue\npreview green\n", encoding="utf-8")
    (tmp_path / "haproxy.cfg").write_text(config, encoding="utf-8")
    return subprocess.run([haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")],
                          capture_output=True, text=True, timeout=30, check=False)


def test_dns_colours_are_server_templates_resolved_by_haproxy(tmp_path: Path) -> None:
    config = render_config({"blue": NAMES["blue"]}, str(tmp_path / "colour.map"), dns=NAMES,
                           slots=4)
    lines = [line.strip() for line in config.splitlines()]
    assert "resolvers bgci" in lines and "parse-resolv-conf" in lines
    assert ("server-template app 1-4 shop-blue:8000 resolvers bgci "
            "init-addr last,libc,none "
            "resolve-prefer ipv4 check inter 1s fall 2 rise 1") in lines
    # a colour that runs nothing starts in maintenance; its name is there for when it does
    assert ("server-template app 1-4 shop-green:8000 resolvers bgci init-addr none "
            "resolve-prefer ipv4 check inter 1s fall 2 rise 1 disabled") in lines
    assert lines.count("option redispatch") == 2
    checked = haproxy_check(config, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_fixed_addresses_render_as_before(tmp_path: Path) -> None:
    config = render_config({"blue": "10.0.0.5:8000"}, str(tmp_path / "colour.map"))
    assert "resolvers" not in config and "server-template" not in config
    assert "    server app 10.0.0.5:8000\n" in config
    assert "    server app 127.0.0.1:1 disabled\n" in config
    checked = haproxy_check(config, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
