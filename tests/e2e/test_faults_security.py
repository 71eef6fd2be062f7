"""What bgci exposes, and what it passes on. The admin interfaces of the routers it manages are
reachable only locally: HAProxy's runtime API in a container listens on the container's loopback
(no published port but live and preview, refused from outside the container); as local
processes, HAProxy's and Caddy's admin APIs are unix sockets only their owner can use, and
Traefik's API listens on 127.0.0.1. And values full of shell metacharacters (an app environment
value, a hook's arguments, an image reference) reach their target literally: nothing is run by
them (tests/test_shell_safety.py checks the code for the same, statically)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import TRACEBACK, Project, Target, junit_cases
from faults_support import PLATFORMS

from bgci import detached, sockets
from bgci.config import load_config
from bgci.registry import make_router, open_site
from bgci.routers import caddy, haproxy
from tests.helpers.ports import fresh_port
from tests.helpers.routers import ListLog

pytestmark = pytest.mark.e2e


# -- what a process listens on ----------------------------------------------------------------
def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    return inodes


def _addr(hex_addr: str) -> tuple[str, int]:
    host, port = hex_addr.split(":")
    if len(host) == 8:  # IPv4, little-endian
        ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(host)[::-1])
    else:  # IPv6: four little-endian 32-bit words
        raw = b"".join(bytes.fromhex(host[i:i + 8])[::-1] for i in range(0, 32, 8))
        ip = socket.inet_ntop(socket.AF_INET6, raw)
    return ip, int(port, 16)


def tcp_listeners(tables: list[str], inodes: set[str] | None = None) -> set[tuple[str, int]]:
    """(address, port) of the LISTEN sockets in /proc/net/tcp{,6} text (of ``inodes`` only)."""
    found = set()
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and (inodes is None or fields[9] in inodes):
                found.add(_addr(fields[1]))
    return found


def unix_listeners(inodes: set[str]) -> list[str]:
    """Inodes of the listening unix sockets among ``inodes``."""
    found = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Flags 00010000: __SO_ACCEPTCON, a listening socket
        if len(fields) >= 7 and fields[6] in inodes and fields[3] == "00010000":
            found.append(fields[6])
    return found


# each local router's admin socket, relative to its directory (bgci/routers/*.py)
ADMIN_SOCKETS = {"haproxy": haproxy.ADMIN_SOCKET, "caddy": caddy.ADMIN_SOCKET}


# -- managed routers as local processes (the process platform) ------------------------------
@pytest.mark.e2e
@pytest.mark.process
@pytest.mark.parametrize("kind", ["haproxy", "traefik", "caddy"])
def test_local_router_admin_is_local_and_owner_only(tmp_path: Path, kind: str) -> None:
    listen, preview = fresh_port(), fresh_port()
    (tmp_path / "bgci.toml").write_text(
        'app = "shop"\n[platform]\nkind = "process"\ncommand = "true"\nstate_dir = "state"\n'
        f'[router]\nkind = "{kind}"\nlisten = "127.0.0.1:{listen}"\n'
        f'preview = "127.0.0.1:{preview}"\n[health]\npath = "/"\n')
    config = load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path, environ={})
    router = make_router(config, open_site(config))
    log = ListLog()
    pidfile = tmp_path / "state" / "shop" / "router" / "bgci-shop-router.pid"
    try:
        router.ensure({}, None, log)  # type: ignore[arg-type]
        record = detached.read_record(pidfile)
        assert record is not None, f"no pidfile {pidfile}: {log.lines}"
        inodes = _socket_inodes(detached.members(record) or [record.pid])
        tables = [Path(f"/proc/{record.pid}/net/{t}").read_text() for t in ("tcp", "tcp6")]
        listening = tcp_listeners(tables, inodes)
        ports = {port for _, port in listening}
        assert {listen, preview} <= ports, listening
        wide = [(ip, port) for ip, port in listening if ip not in ("127.0.0.1", "::1")]
        assert not wide, f"{kind} listens beyond the loopback: {wide}"
        extra = ports - {listen, preview}
        if kind == "traefik":  # its API, on the loopback (checked above), on one port of its own
            assert len(extra) == 1, listening
        else:  # the admin API is a unix socket, not a port
            assert not extra, f"{kind} listens on more than live and preview: {listening}"
            assert unix_listeners(inodes), f"{kind} listens on no unix socket"
            # bound under a temporary name and renamed: the listing cannot name it, the router can
            path = pidfile.parent / ADMIN_SOCKETS[kind]
            info = os.stat(path)
            assert stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid(), path
            assert stat.S_IMODE(info.st_mode) & 0o077 == 0, (
                f"{path} is mode {stat.S_IMODE(info.st_mode):o}: others may use the admin API")
    finally:
        router.stop(log)  # type: ignore[arg-type]
    assert detached.read_record(pidfile) is None or not detached.members(
        detached.read_record(pidfile))  # type: ignore[arg-type]


# -- HAProxy in a container (the docker platform) -------------------------------------------
@pytest.fixture
def docker_only(docker_target: Target) -> Target:
    return docker_target


@pytest.mark.e2e
@pytest.mark.docker
def test_haproxy_container_publishes_only_live_and_preview(tmp_path: Path, docker_only: Target
                                                           ) -> None:
    from e2e_support import make_project

    p = make_project(tmp_path / "project", docker_only)
    # deploy-green starts the managed router (a stage about a deployment refuses before there is
    # one: it starts nothing)
    p.run("deploy-green", "--image", docker_only.release("v1"))
    client: Any = docker_only.client  # type: ignore[attr-defined]
    router = client.containers.get(f"bgci-{p.app}-router")
    live_port, preview_port = int(p.listen.rsplit(":", 1)[1]), int(p.preview.rsplit(":", 1)[1])

    bindings = router.attrs["HostConfig"]["PortBindings"]
    published = {inner: [(b["HostIp"], int(b["HostPort"])) for b in outer]
                 for inner, outer in bindings.items()}
    assert published == {"8080/tcp": [("127.0.0.1", live_port)],
                         "8081/tcp": [("127.0.0.1", preview_port)]}, published

    # inside the container: the runtime API listens on its loopback only
    tables = [router.exec_run(["cat", f"/proc/net/{t}"]).output.decode() for t in ("tcp", "tcp6")]
    # (127.0.0.11 is the engine's own DNS resolver, in every container of a user network)
    listening = tcp_listeners(tables)
    admin = [(ip, port) for ip, port in listening if port not in (8080, 8081) and ip != "127.0.0.11"]
    assert admin == [("127.0.0.1", 9999)], listening

    # from outside the container, at its address on the app's network: refused
    ip = router.attrs["NetworkSettings"]["Networks"][f"bgci-{p.app}"]["IPAddress"]
    with socket.create_connection((ip, 8080), timeout=5):
        pass  # the container is reachable from here...
    with pytest.raises(ConnectionRefusedError):  # ...its runtime API is not
        socket.create_connection((ip, 9999), timeout=5).close()

    # the engine runs here: the runtime API is also a unix socket, in a directory the deploying
    # user alone may open (and the container runs as that user: the socket is theirs, 0600)
    mounts = {m["Destination"]: m["Source"] for m in router.attrs["Mounts"]}
    shared = Path(mounts["/run/bgci-haproxy"])
    assert router.attrs["Config"]["User"] == f"{os.geteuid()}:{os.getegid()}"
    for path, mode in ((shared, 0o700), (shared / "admin.sock", 0o600)):
        info = path.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), mode), \
            f"{path}: uid {info.st_uid}, {stat.filemode(info.st_mode)}"
    assert "bgci-haproxy/colour.map" in sockets.command(str(shared / "admin.sock"), "show map")


# -- shell metacharacters reach their target literally ---------------------------------------
SECURITY_PLATFORMS = [p for p in PLATFORMS if p.values[0] in ("docker", "process")]


@pytest.fixture(params=SECURITY_PLATFORMS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    from conftest import _open_target

    opened = _open_target(request.param, request)
    try:
        yield opened
    finally:
        opened.cleanup()


@pytest.mark.e2e
def test_shell_metacharacters_reach_their_target_literally(
        target: Target, new_project: Callable[..., Project], tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    weird = (f"a b;c|d&e $(touch {canary}) `touch {canary}` 'sq' \"dq\" $HOME * ? ~ < > \\ "
             f"&& touch {canary} #end")
    runner_hook = ("printf '<%s>\\n' \"$WEIRD_RUNNER\" 'semi;colon' '$(touch " + str(canary)
                   + ")' \"$BGCI_APP\"")
    p = new_project({
        "platform.env": {"WEIRD": weird},
        "hooks.pre_deploy": {"command": runner_hook, "run_in": "runner"},
        "hooks.post_deploy": {"command": 'printf "<%s>\\n" "$WEIRD"', "run_in": "green"},
    })
    p.run("deploy-green", "--image", target.release("v1"), env={"WEIRD_RUNNER": weird})
    checks = {c["name"]: c for c in p.result("deploy-green")["checks"]}
    runner = checks["hook pre_deploy"]["output"]
    assert runner.splitlines() == [f"<{weird}>", "<semi;colon>", f"<$(touch {canary})>",
                                   f"<{p.app}>"], runner
    green = checks["hook post_deploy"]["output"]
    assert f"<{weird}>" in green.splitlines(), green  # the app's environment, inside green
    assert junit_cases(p.junit("deploy-green"))["hook post_deploy"] is not None
    if target.kind == "docker":
        client: Any = target.client  # type: ignore[attr-defined]
        env = client.containers.get(f"{p.app}-blue").attrs["Config"]["Env"]
        assert f"WEIRD={weird}" in env

    # an image reference made of shell: refused as a reference, never run
    for image in (f"v1;touch {canary}", f"bgci-e2e/x:$(touch {canary})",
                  f"x`touch {canary}`", f"x && touch {canary}"):
        run = p.run("deploy-green", "--image", image, expect=2)
        assert TRACEBACK not in run.text and "hint:" in run.err, run
    assert not canary.exists(), "a metacharacter was interpreted by a shell"
    p.assert_serves("blue", "1.0.0", p.preview_url)
