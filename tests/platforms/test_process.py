"""The process platform with a tiny stdlib app: releases with their own venv, colours as detached
process groups that outlive the bgci process, stopped as a whole group, never mistaken for an
unrelated process that got the same pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bgci import detached
from bgci.config import Config, load_config
from bgci.errors import ConfigError
from bgci.model import COLOURS, Release
from bgci.platforms.process import ProcessPlatform

REPO = Path(__file__).resolve().parents[2]

APP = '''
import http.server, os, sys

VERSION = open("VERSION").read().strip()
print(f"tiny app {VERSION} starting on {os.environ['PORT']}", flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = " ".join([os.environ["BGCI_COLOR"], VERSION, sys.prefix,
                         os.environ.get("GREETING", "")]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

# ignores SIGTERM, and so does the child it starts: only the group's SIGKILL ends them
STUBBORN = '''
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "time.sleep(300)"])
print(f"child {child.pid}", flush=True)
time.sleep(300)
'''


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def debug(self, message: str) -> None:
        self.lines.append(message)

    def group(self, title: str) -> contextlib.nullcontext[None]:
        self.lines.append(f"== {title}")
        return contextlib.nullcontext()


def make_app(root: Path, version: str, command: str = "python app.py {port}",
             extra: str = "") -> Config:
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(APP)
    (root / "stubborn.py").write_text(STUBBORN)
    (root / "VERSION").write_text(version + "\n")
    (root / "bgci.toml").write_text(textwrap.dedent(f"""\
        app = "tiny"
        [platform]
        kind = "process"
        command = "{command}"
        state_dir = "state"
        env = {{ GREETING = "hello" }}
        [router]
        kind = "traefik"
        [switch]
        drain = 1
        {extra}
        """))
    return load_config(str(root / "bgci.toml"), cwd=root, environ={})


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Config, ProcessPlatform]]:
    """A tiny app's config and platform; every colour it left running is stopped afterwards."""
    config = make_app(tmp_path / "app", "1.0.0")
    platform = ProcessPlatform(config)
    try:
        yield config, platform
    finally:
        for colour in COLOURS:
            platform.stop(colour, 1.0, Log())


def get(url: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        try:
            return requests.get(url, timeout=2).text
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_build_makes_a_release_with_its_own_venv_and_a_content_digest(
        app: tuple[Config, ProcessPlatform], tmp_path: Path) -> None:
    config, platform = app
    root = config.root
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    log = Log()
    first = platform.build("v1", log, {})
    release_dir = root / "state" / "tiny" / "releases" / "v1"
    assert first.image == "v1" and first.digest.startswith("sha256:")
    assert (release_dir / "venv" / "bin" / "python").exists()
    copied = sorted(p.name for p in (release_dir / "app").iterdir())
    assert copied == ["VERSION", "app.py", "bgci.toml", "stubborn.py"]  # no .git, cache, state dir
    assert platform.resolve("v1") == first and platform.has(first)

    again = platform.build("v1", log, {})  # same sources: the same release, not rebuilt
    assert again == first
    assert any("already built" in line for line in log.lines)
    assert platform.build("other-tag", log, {}).digest == first.digest  # the digest is the content

    (root / "VERSION").write_text("2.0.0\n")
    second = platform.build("v2", log, {})
    assert second.digest != first.digest
    assert not platform.has(Release("v1", second.digest))
    with pytest.raises(ConfigError):
        platform.resolve("never-built")
    with pytest.raises(ConfigError):
        platform.resolve("../escape")


def test_a_colour_outlives_the_bgci_process_that_started_it(
        app: tuple[Config, ProcessPlatform]) -> None:
    config, platform = app
    release = platform.build("v1", Log(), {})
    starter = textwrap.dedent(f"""
        from bgci.config import load_config
        from bgci.platforms.process import ProcessPlatform
        from bgci.model import Release

        class Log:
            def info(self, m): print(m)
            debug = info

        config = load_config({str(config.root / "bgci.toml")!r}, environ={{}})
        platform = ProcessPlatform(config)
        platform.start("blue", Release("v1", {release.digest!r}), platform.spec(), Log())
        """)
    proc = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True,
                          timeout=60, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    instance = platform.instances()["blue"]  # the starter has exited by now
    assert instance.running and instance.release == release
    assert instance.address.startswith("127.0.0.1:")
    colour, version, prefix, greeting = get(instance.direct_url).split(" ")
    assert (colour, version, greeting) == ("blue", "1.0.0", "hello")
    assert prefix == str(config.root / "state" / "tiny" / "releases" / "v1" / "venv")

    record = detached.read_record(config.root / "state" / "tiny" / "colours" / "blue" / "process.json")
    assert record is not None
    stat = detached.proc_stat(record.pid)
    assert stat is not None and stat.session == record.pid and stat.pgrp == record.pid
    assert "tiny app 1.0.0 starting" in platform.logs("blue")


def test_stop_ends_the_whole_group_and_forgets_the_colour(
        app: tuple[Config, ProcessPlatform]) -> None:
    config, platform = app
    release = platform.build("v1", Log(), {})
    instance = platform.start("green", release, platform.spec(), Log())
    get(instance.direct_url)
    record = detached.read_record(config.root / "state" / "tiny" / "colours" / "green" / "process.json")
    assert record is not None and detached.members(record)
    log = Log()
    platform.stop("green", 5.0, log)
    assert detached.members(record) == []
    assert "green" not in platform.instances()
    assert not any("killed" in line for line in log.lines)  # SIGTERM was enough
    with pytest.raises(requests.ConnectionError):
        requests.get(instance.direct_url, timeout=2)


def test_start_on_a_busy_colour_replaces_what_ran_there(app: tuple[Config, ProcessPlatform]) -> None:
    config, platform = app
    v1 = platform.build("v1", Log(), {})
    (config.root / "VERSION").write_text("2.0.0\n")
    v2 = platform.build("v2", Log(), {})
    first = platform.start("blue", v1, platform.spec(), Log())
    assert get(first.direct_url).split(" ")[1] == "1.0.0"
    second = platform.start("blue", v2, platform.spec(), Log())
    assert get(second.direct_url).split(" ")[1] == "2.0.0"
    assert platform.instances()["blue"].release == v2
    assert "tiny app 1.0.0" not in platform.logs("blue")  # the old log was rotated away
    # the colour keeps its address: a router that reaches it by port need not change
    assert second.address == first.address


def test_a_colour_whose_old_port_is_taken_gets_another(
        app: tuple[Config, ProcessPlatform]) -> None:
    _, platform = app
    v1 = platform.build("v1", Log(), {})
    first = platform.start("green", v1, platform.spec(), Log())
    pid = json.loads((platform.root / "colours" / "green" / "process.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)  # it died; its record (and port) stay behind
    port = int(first.address.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        second = platform.start("green", v1, platform.spec(), Log())
        try:
            assert second.address != first.address
            assert get(second.direct_url).split(" ")[1] == "1.0.0"
        finally:
            platform.stop("green", 5, Log())


def test_a_process_that_ignores_sigterm_is_killed_with_its_children_after_the_grace(
        tmp_path: Path) -> None:
    config = make_app(tmp_path / "app", "1.0.0", command="python stubborn.py")
    platform = ProcessPlatform(config)
    try:
        release = platform.build("v1", Log(), {})
        platform.start("blue", release, platform.spec(), Log())
        deadline = time.monotonic() + 15
        while "child" not in platform.logs("blue") and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(platform.logs("blue").split("child ")[1].split()[0])
        record = detached.read_record(config.root / "state" / "tiny" / "colours" / "blue" / "process.json")
        assert record is not None and child in detached.members(record)
        log = Log()
        started = time.monotonic()
        platform.stop("blue", 1.0, log)
        assert 1.0 <= time.monotonic() - started < 10
        assert any("killed its process group" in line for line in log.lines)
        assert detached.members(record) == []
        stat = detached.proc_stat(child)
        assert stat is None or stat.state == "Z"
    finally:
        platform.stop("blue", 1.0, Log())


def test_a_reused_pid_is_never_taken_for_a_colour(app: tuple[Config, ProcessPlatform]) -> None:
    config, platform = app
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        stat = detached.proc_stat(stranger.pid)
        assert stat is not None
        fake = detached.PidRecord(stranger.pid, stat.start_ticks + 1, time.time(),
                                  {"port": 1, "release": {"image": "v1", "digest": "sha256:x"}})
        pidfile = config.root / "state" / "tiny" / "colours" / "blue" / "process.json"
        pidfile.parent.mkdir(parents=True)
        detached.write_record(pidfile, fake)
        assert platform.instances()["blue"].running is False
        platform.stop("blue", 0.5, Log())
        assert stranger.poll() is None  # not signalled
        assert not pidfile.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_run_once_runs_in_the_release_environment_with_a_timeout(
        app: tuple[Config, ProcessPlatform]) -> None:
    config, platform = app
    release = platform.build("v1", Log(), {})
    code, out = platform.run_once(release, 'python -c "import sys; print(sys.prefix)"; '
                                  'echo "$GREETING $BGCI_STAGE"; cat VERSION',
                                  {"BGCI_STAGE": "switch"}, timeout=30)
    assert code == 0
    assert out.split() == [str(config.root / "state" / "tiny" / "releases" / "v1" / "venv"),
                           "hello", "switch", "1.0.0"]
    started = time.monotonic()
    code, out = platform.run_once(release, "sleep 30 & sleep 30", {}, timeout=1)
    assert code == 124 and "timed out" in out
    assert time.monotonic() - started < 10


def test_start_needs_a_command_and_a_built_release(tmp_path: Path) -> None:
    config = make_app(tmp_path / "app", "1.0.0", command="")
    platform = ProcessPlatform(config)
    with pytest.raises(ConfigError, match=r"platform\.command"):
        platform.start("blue", Release("v1", "sha256:x"), platform.spec(), Log())
    config = make_app(tmp_path / "app2", "1.0.0")
    with pytest.raises(ConfigError, match="not built"):
        ProcessPlatform(config).start("blue", Release("v1", "sha256:x"),
                                    ProcessPlatform(config).spec(), Log())


def test_the_state_dir_defaults_to_the_users_state_home_and_follows_the_environment(
        tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "tiny"\n[platform]\nkind = "process"\n')
    config = load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path, environ={})
    assert ProcessPlatform(config).root == Path(os.path.expanduser("~/.local/state/bgci/tiny"))
    config = load_config(str(tmp_path / "bgci.toml"), cwd=tmp_path,
                         environ={"BGCI_PLATFORM_STATE_DIR": str(tmp_path / "elsewhere")})
    assert ProcessPlatform(config).root == tmp_path / "elsewhere" / "tiny"


def test_detached_terminate_reports_a_process_that_is_gone() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    record = detached.PidRecord(proc.pid, 0, time.time())
    assert detached.terminate(record, 0.1, signal.SIGTERM) == "not running"
