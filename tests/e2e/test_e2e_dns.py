"""router.kind = "dns" end to end, on the process platform: a real authoritative server (BIND's
named, on loopback, a test zone and a TSIG key), a real caching resolver in front of it (unbound),
the colours at their own loopback addresses on one port, and the real CLI.

One scenario proves it all: under a load that resolves the live name through the caching
resolver for every new connection and never retries, a switch with a wrong TSIG key is exit 3
with nothing changed; v1 -> v2 -> rollback then loses no request, and every new connection
reaches the new colour within the record's TTL plus one second of the moment the authoritative
record moved; each stage's "live: X" is who answered at the address the server gave.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_process import ProcessTarget
from e2e_support import EXAMPLE_APP, Project, unique_app

from tests.helpers.dnsserver import (
    KEY_NAME,
    ZONE,
    Request,
    ResolvingLoad,
    dns_servers,
    free_port_on,
    missing,
    new_secret,
    query,
    serial,
    time_to_all_new,
    watch_answer,
)
from tests.helpers.images import to_toml

pytestmark = [pytest.mark.e2e, pytest.mark.process]

TTL = 2
HOSTS = {"blue": "127.0.0.2", "green": "127.0.0.3"}
LIVE, PREVIEW = f"www.{ZONE}", f"preview.{ZONE}"
SECRET_ENV = "ZONE_UPDATE_KEY_B64"  # a name that does not look secret: bgci masks it anyway
COMMAND = ("gunicorn app:app --bind {host}:{port} --workers 2 --worker-class gthread --threads 4 "
           "--graceful-timeout 4 --timeout 30")


def dns_project(root: Path, target: ProcessTarget, server: tuple[str, int], port: int) -> Project:
    app = unique_app("e2e-dns")
    config: dict[str, Any] = {
        "app": app,
        "platform": {"kind": "process", "command": COMMAND, "state_dir": str(target.state_dir),
                     "port": port, "hosts": HOSTS},
        "router": {"kind": "dns", "managed": False, "dns_server": f"{server[0]}:{server[1]}",
                   "dns_zone": ZONE, "dns_live_name": LIVE, "dns_preview_name": PREVIEW,
                   "dns_ttl": TTL, "dns_key_name": KEY_NAME, "dns_key_secret_env": SECRET_ENV},
        "health": {"path": "/healthz", "interval": 0.2, "deadline": 60},
        "verify": {"smoke": "smoke"},
        "switch": {"drain": 0, "confirm_requests": 10},
    }
    root.mkdir(parents=True)
    shutil.copytree(EXAMPLE_APP / "smoke", root / "smoke",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    (root / "bgci.toml").write_text(to_toml(config), encoding="utf-8")
    target.adopt(app)  # its cleanup stops whatever of the app still runs
    return Project(root=root, app=app, listen=f"{LIVE}:{port}", preview=f"{PREVIEW}:{port}",
                   target=target)


def moved_to(changes: list[tuple[float, list[str]]], address: str, after: float) -> float:
    """When the authoritative record became ``address``, at or after ``after``."""
    return next(t for t, answer in changes if answer == [address] and t >= after)


def colours(requests: list[Request]) -> set[str]:
    return {r.colour for r in requests}


def test_dns_switch_and_rollback_under_a_resolving_load(process_target: ProcessTarget,
                                                         tmp_path: Path) -> None:
    problem = missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    secret = new_secret()
    with dns_servers(tmp_path / "dns", secret) as (bind, resolver):
        port = free_port_on(*HOSTS.values())
        p = dns_project(tmp_path / "project", process_target, bind.address, port)
        good = {SECRET_ENV: secret}

        # v1 goes live: the live name is created, pointing at blue's address
        p.run("deploy-green", "--image", process_target.release("v1"), env=good)
        assert query(bind.address, PREVIEW) == ["127.0.0.2"] and query(bind.address, LIVE) == []
        p.run("verify", env={**good, "BGCI_VERIFY_SMOKE": ""})  # the smoke suite: on v2's
        p.run("switch", env=good)
        assert query(bind.address, LIVE) == ["127.0.0.2"]
        assert query(bind.address, PREVIEW) == ["127.0.0.3"]
        assert p.result("switch")["live_colour"] == "blue"
        assert p.dotenv()["BGCI_LIVE_URL"] == f"http://{LIVE}:{port}"

        stop = threading.Event()
        changes: list[tuple[float, list[str]]] = []
        watcher = watch_answer(bind.address, LIVE, stop, changes)
        load = ResolvingLoad(resolver.address, LIVE, port).start()
        try:
            p.run("deploy-green", "--image", process_target.release("v2"), env=good)
            p.run("verify", env=good)
            assert query(bind.address, PREVIEW) == ["127.0.0.3"]
            smoke = [c for c in p.result("verify")["checks"] if c["name"].startswith("smoke::")]
            assert len(smoke) == 4 and all(c["outcome"] == "passed" for c in smoke)  # at green

            # a wrong TSIG key: refused by the server, exit 3, the zone as it was, blue still live
            soa = serial(bind.address)
            wrong = p.run("switch", env={SECRET_ENV: new_secret()}, expect=3)
            assert "does not accept the TSIG key" in wrong.err and "nothing was changed" in wrong.err
            assert serial(bind.address) == soa and query(bind.address, LIVE) == ["127.0.0.2"]
            assert p.result("switch")["live_colour"] == "blue"  # observed as the stage ended
            assert secret not in wrong.text

            began = time.monotonic()
            switch = p.run("switch", env=good)  # the key fixed: the same switch, again
            to_green = moved_to(changes, "127.0.0.3", began)
            assert time.monotonic() - to_green >= TTL + 1, "the switch ended before the TTL was out"
            result = p.result("switch")
            drained = {c["name"]: c for c in result["checks"]}["drain blue"]
            assert "waited out the TTL and a second (3s)" in drained["message"]
            assert drained["seconds"] >= TTL + 1 and result["live_colour"] == "green"
            assert "resolvers may still send new clients to blue" in switch.err
            time.sleep(1.0)  # new connections after the TTL: all of them must reach green

            began = time.monotonic()
            p.run("rollback", env=good)
            to_blue = moved_to(changes, "127.0.0.2", began)
            assert query(bind.address, PREVIEW) == ["127.0.0.3"]
            assert p.result("rollback")["live_colour"] == "blue"
            time.sleep(1.0)
        finally:
            requests = load.stop()
            stop.set()
            watcher.join(timeout=5)

        lost = [r for r in requests if r.error]
        assert not lost, f"{len(lost)} of {len(requests)} requests lost, e.g. {lost[:3]}"
        before = [r for r in requests if r.ended < to_green]
        during_v2 = [r for r in requests if to_green <= r.started and r.ended < to_blue]
        after = [r for r in requests if r.started >= to_blue]
        assert before and during_v2 and after
        assert colours(before) == {"blue"}  # the refused switch moved nobody
        to_all_green = time_to_all_new(during_v2, to_green, "green")
        to_all_blue = time_to_all_new(after, to_blue, "blue")
        print(f"\nDNS TTL {TTL}s, {len(requests)} requests through unbound, 0 lost; every new "
              f"connection on the new colour {to_all_green:.2f}s (switch) and {to_all_blue:.2f}s "
              "(rollback) after the authoritative record moved")
        assert to_all_green <= TTL + 1 and to_all_blue <= TTL + 1, (to_all_green, to_all_blue)

        status = p.status(env=good)
        assert status["live"] == "blue" and status["colours"]["green"]["running"]
        p.run("down", env=good)
        assert query(bind.address, LIVE) == ["127.0.0.2"]  # bgci leaves the records as they are
