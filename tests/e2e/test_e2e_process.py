"""What only the process platform has, end to end (the deployment cycle itself, the refusals, the
locks, zero lost requests and retire run on it in the shared suite): a release that `bgci build`
makes on this machine and `deploy-green` takes from the build's record; colours that outlive the
bgci that started them, in sessions of their own; `bgci deploy` in one process; a managed router
that died and is started again with the live colour it had; `bgci down`; and the README's first
command, the quickstart script, which runs whole and leaves no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from e2e_process import ProcessTarget, example_project, pip_env, processes_naming
from e2e_support import REPO, RequestLoop, bgci_argv, clean_env, fresh_port, make_project

from bgci import detached

pytestmark = [pytest.mark.e2e, pytest.mark.process]

EXAMPLE = REPO / "examples" / "flask-app"


@pytest.fixture
def target(process_target: ProcessTarget) -> ProcessTarget:
    return process_target


def test_a_built_release_runs_detached_and_outlives_its_router(target: ProcessTarget,
                                                               tmp_path: Path) -> None:
    p = example_project("flask-app", tmp_path / "app", target, "flask-demo")
    app_dir = target.state_dir / p.app

    p.run("build", "--tag", "v1")
    built = p.result("build")
    assert built["image"] == "v1" and built["digest"].startswith("sha256:")
    assert (app_dir / "releases" / "v1" / "venv" / "bin" / "gunicorn").is_file()

    p.run("deploy-green")  # no --image: the release the build recorded
    assert p.result("deploy-green")["image"] == "v1"
    p.assert_serves("blue", "1.0.0", p.preview_url)
    p.run("verify")
    p.run("switch")
    p.assert_serves("blue", "1.0.0")

    # every bgci process has exited; blue runs on as the leader of a session of its own
    record = detached.read_record(app_dir / "colours" / "blue" / "process.json")
    assert record is not None and detached.alive(record)
    stat = detached.proc_stat(record.pid)
    assert stat is not None and (stat.session, stat.pgrp) == (record.pid, record.pid)

    (p.root / "VERSION").write_text("2.0.0\n", encoding="utf-8")
    p.run("deploy", "--tag", "v2")  # build, deploy-green, verify, switch in one process
    p.assert_serves("green", "2.0.0")
    p.assert_serves("blue", "1.0.0", p.preview_url)
    assert [p.result(s)["image"] for s in ("build", "deploy-green", "verify", "switch")] == ["v2"] * 4

    # the router dies: status says so; the next stage starts it again with the same live colour
    router = detached.read_record(app_dir / "router" / f"bgci-{p.app}-router.pid")
    assert router is not None
    assert detached.terminate(router, 5.0) == "stopped"
    assert p.status(expect=1)["router"].startswith("not answering")  # exit 1: live is not served
    with pytest.raises(requests.ConnectionError):
        requests.get(p.live_url, timeout=2)
    p.run("retire", "--force")
    p.assert_serves("green", "2.0.0")
    status = p.status()
    assert status["router"] == "running" and status["live"] == "green"
    assert not status["colours"]["blue"]["running"] and status["colours"]["blue"]["image"] == "v1"
    assert list(target.running(p.app)) == ["green"]

    down = p.run("down")
    assert "stopped the router" in down.out
    assert target.running(p.app) == {}
    assert not processes_naming(app_dir), "bgci down left processes of the app running"
    with pytest.raises(requests.ConnectionError):
        requests.get(p.live_url, timeout=2)


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
        left = processes_naming(tmp_path)
        for pid in left:  # named by this test's own directory: ours to kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
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


def test_a_colour_deployed_again_keeps_its_port_so_nginx_is_not_reloaded(
        target: ProcessTarget, tmp_path: Path) -> None:
    """nginx must reload to reach a colour at a new address, and a reload can lose a request
    sent on an idle keep-alive connection as an old worker closes it. A colour started again
    takes its last port when that is free: the site does not change, nginx is not reloaded
    (its workers are the same processes) and none of the load through the live address fails."""
    p = make_project(tmp_path / "app", target, {"router.kind": "nginx"})
    p.run("deploy-green", "--image", target.release("v1"))
    p.run("verify")
    p.run("switch")
    p.run("deploy-green", "--image", target.release("v2"))  # green's first start: nginx reloads
    port = p.status()["colours"]["green"]["port"]
    workers = nginx_workers(target, p.app)
    with RequestLoop(p.live_url, threads=4, hard_cap=120.0) as loop:
        loop.wait_for(5)
        p.run("deploy-green", "--image", target.release("v3"))
        time.sleep(0.5)
    failed = [r for sent in loop.records for r in sent
              if r.error or r.status is None or not 200 <= r.status < 300]
    total = sum(len(sent) for sent in loop.records)
    assert not failed, f"{len(failed)} of {total} requests failed: {failed[:3]}"
    assert p.status()["colours"]["green"]["port"] == port, "green moved to another port"
    p.assert_serves("green", "3.0.0", p.preview_url)
    assert nginx_workers(target, p.app) == workers, "nginx was reloaded (its workers changed)"


def nginx_workers(target: ProcessTarget, app: str) -> list[int]:
    """The pids of the managed nginx's workers: a reload replaces every one of them."""
    [pidfile] = (target.state_dir / app / "router").glob("*.pid")
    record = detached.read_record(pidfile)
    assert record is not None and detached.alive(record), f"no nginx running for {app}"
    children = Path(f"/proc/{record.pid}/task/{record.pid}/children").read_text().split()
    assert children, "nginx has no workers"
    return sorted(int(pid) for pid in children)
