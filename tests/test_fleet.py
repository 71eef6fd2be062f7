"""A fleet (platform.fleet): the stage on every host in parallel, nothing changed anywhere when a
host does not answer, a switch put back on every host when any host fails it. Hosts here are a
fake runner that writes each host's report as bgci would; tests/e2e/test_cluster.py runs real ones."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bgci.config import load_config
from bgci.errors import ConfigError, InfraError
from bgci.fleet import Fleet, child_argv, command_at, fleet_lock_command, label, run_stage
from bgci.lock import new_lock
from bgci.log import StderrLog
from bgci.model import StageResult
from bgci.state.files import FileStore

A, B, C = "ssh://deploy@app-1", "ssh://deploy@app-2", "ssh://deploy@app-3:2222"


class Hosts:
    """What each host answers to each command: its exit code and its report's facts."""

    def __init__(self, answers: Mapping[tuple[str, str], tuple[int, dict[str, Any]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, host: str, argv: list[str], env: Mapping[str, str],
                 echo: Callable[[str], None]) -> int:
        with self._lock:
            self.calls.append((host, argv, dict(env)))
        command = argv[command_at(argv)]
        code, facts = self.answers[(host, command)]
        echo(f"{command} on {host}")
        report = Path(env["BGCI_REPORTS"]) / f"{command}.json"
        report.write_text(json.dumps({"stage": command, "exit_code": code, **facts}))
        return code

    def ran(self, command: str) -> list[str]:
        return sorted(host for host, argv, _ in self.calls if argv[command_at(argv)] == command)


def switched(colour: str) -> tuple[int, dict[str, Any]]:
    return 0, {"changed": True, "live_color": colour, "idle_color": "blue" if colour == "green"
               else "green", "message": f"live: {colour}", "digest": "sha256:2"}


def failed(message: str, code: int = 1) -> tuple[int, dict[str, Any]]:
    return code, {"changed": False, "live_color": "blue", "idle_color": "green",
                  "message": message, "digest": "sha256:2"}


@pytest.fixture
def locks() -> list[str]:
    return []


def fleet_of(tmp_path: Path, hosts: Hosts, *names: str) -> Fleet:
    return Fleet(list(names), tmp_path / "reports", StderrLog(colour=False), runner=hosts,
                 environ={"PATH": os.environ.get("PATH", ""), "GITHUB_ACTIONS": "true",
                          "GITHUB_OUTPUT": "/tmp/out", "BGCI_JSON": "1"})


def run(fleet: Fleet, argv: list[str], locks: list[str],
        down: Mapping[str, str] | None = None) -> StageResult:
    @contextlib.contextmanager
    def fleet_lock() -> Iterator[None]:
        locks.append("taken")
        yield
        locks.append("released")

    command = argv[command_at(argv)]
    result = StageResult(stage=command, app="shop")
    run_stage(fleet, command, argv, result, lambda host: (down or {}).get(host), fleet_lock)
    return result


def test_a_stage_runs_on_every_host_and_reports_each(tmp_path: Path, locks: list[str]) -> None:
    hosts = Hosts({(A, "switch"): switched("green"), (B, "switch"): switched("green")})
    result = run(fleet_of(tmp_path, hosts, A, B), ["-v", "switch"], locks)
    assert result.exit_code == 0 and result.live_colour == "green", result
    assert result.message == "switch passed on all 2 hosts; live: green"
    assert [c.name for c in result.checks] == ["app-1: switch", "app-2: switch"]
    assert set(result.extra["hosts"]) == {"app-1", "app-2"}
    assert locks == ["taken", "released"]
    for host, argv, env in hosts.calls:
        assert argv == ["-v", "switch", "--set", "platform.fleet=[]"]
        assert env["DOCKER_HOST"] == host and env["BGCI_PLATFORM_FLEET"] == "[]"
        assert Path(env["BGCI_REPORTS"]) == tmp_path / "reports" / "hosts" / label(host)
        # the fleet writes the job's outputs once: a host's run does not think it is the job
        assert not {"GITHUB_ACTIONS", "GITHUB_OUTPUT", "BGCI_JSON"} & set(env)


def test_an_unreachable_host_fails_the_stage_before_any_host_changes(
        tmp_path: Path, locks: list[str]) -> None:
    hosts = Hosts({(A, "switch"): switched("green"), (B, "switch"): switched("green")})
    with pytest.raises(InfraError) as caught:
        run(fleet_of(tmp_path, hosts, A, B), ["switch"], locks,
            down={B: "Connection refused"})
    assert caught.value.exit_code == 3
    assert "1 of 2 hosts did not answer: app-2: Connection refused" in caught.value.message
    assert "nothing was changed on any host" in caught.value.message
    assert hosts.calls == [] and locks == []


def test_a_switch_that_fails_on_one_host_is_rolled_back_on_every_host_that_switched(
        tmp_path: Path, locks: list[str]) -> None:
    hosts = Hosts({(A, "switch"): switched("green"), (C, "switch"): switched("green"),
                   (B, "switch"): failed("green did not confirm through the live address"),
                   (A, "rollback"): (0, {"changed": True, "live_color": "blue"}),
                   (C, "rollback"): (0, {"changed": True, "live_color": "blue"})})
    result = run(fleet_of(tmp_path, hosts, A, B, C), ["--config", "x.toml", "switch"], locks)
    assert result.exit_code == 1 and result.status == "failed"
    assert hosts.ran("rollback") == [A, C], "only the hosts that switched are rolled back"
    assert [argv for host, argv, _ in hosts.calls if host == A][1] == [
        "--config", "x.toml", "rollback", "--set", "platform.fleet=[]"]
    assert "app-2 (exit 1: green did not confirm through the live address)" in result.message
    assert "every host serves what it served before" in result.message
    assert result.extra["put_back"] == {"app-1": True, "app-3_2222": True}
    assert locks == ["taken", "released"], "the rollback runs under the same fleet lock"


def test_a_host_that_cannot_be_put_back_is_named_with_exit_3(tmp_path: Path,
                                                               locks: list[str]) -> None:
    hosts = Hosts({(A, "switch"): switched("green"), (B, "switch"): failed("refused", 4),
                   (A, "rollback"): failed("router did not answer", 3)})
    result = run(fleet_of(tmp_path, hosts, A, B), ["switch"], locks)
    assert result.exit_code == 3
    assert "could NOT be put back: app-1 (exit 3: router did not answer)" in result.message


def test_a_dry_run_or_a_failure_with_nothing_switched_rolls_nothing_back(
        tmp_path: Path, locks: list[str]) -> None:
    hosts = Hosts({(A, "switch"): (0, {"changed": True, "dry_run": True}),
                   (B, "switch"): failed("not verified", 4)})
    result = run(fleet_of(tmp_path, hosts, A, B), ["switch", "--dry-run"], locks)
    assert result.exit_code == 4 and hosts.ran("rollback") == []
    hosts = Hosts({(A, "switch"): failed("not verified", 4), (B, "switch"): failed("x", 4)})
    result = run(fleet_of(tmp_path, hosts, A, B), ["switch"], locks)
    assert result.exit_code == 4 and hosts.ran("rollback") == []


def test_status_takes_no_lock_and_says_when_hosts_differ(tmp_path: Path,
                                                         locks: list[str]) -> None:
    hosts = Hosts({(A, "status"): (0, {"live_color": "blue"}),
                   (B, "status"): (0, {"live_color": "green"})})
    result = run(fleet_of(tmp_path, hosts, A, B), ["status"], locks)
    assert locks == [] and result.live_colour is None and not result.observed
    assert "hosts differ on the live colour" in result.message
    assert result.extra["hosts"]["app-2"]["live_color"] == "green"


def test_lock_status_and_release_also_name_and_release_the_fleet_lock(tmp_path: Path,
                                                                     locks: list[str]) -> None:
    store = FileStore(tmp_path / "fleet", "shop-fleet")  # what the first host keeps
    assert store.try_lock(new_lock("deploy job 41", "https://ci.example/41")) is None
    hosts = Hosts({(A, "lock"): (0, {"changed": False, "message": "the deploy lock is free"}),
                   (B, "lock"): (0, {"changed": True, "message": "released"})})
    fleet = fleet_of(tmp_path, hosts, A, B)

    status = run(fleet, ["lock", "status"], locks)
    fleet_lock_command(store, "app-1", False, status, StderrLog(colour=False))
    assert "; the fleet lock (on app-1): held by deploy job 41" in status.message, status.message
    assert status.extra["fleet_lock"]["holder"] == "deploy job 41"
    assert store.current_lock() is not None

    release = run(fleet, ["lock", "release"], locks)
    fleet_lock_command(store, "app-1", True, release, StderrLog(colour=False))
    assert "the fleet lock (on app-1): released (held by deploy job 41" in release.message
    assert release.changed and store.current_lock() is None and locks == []

    again = run(fleet, ["lock", "release"], locks)
    fleet_lock_command(store, "app-1", True, again, StderrLog(colour=False))
    assert again.message.endswith("; the fleet lock (on app-1): free")
    assert again.extra["fleet_lock"] is None


def test_an_old_report_is_never_read_as_this_run_s(tmp_path: Path, locks: list[str]) -> None:
    stale = tmp_path / "reports" / "hosts" / "app-1" / "verify.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"message": "from yesterday", "live_color": "green"}))

    def dies(host: str, argv: list[str], env: Mapping[str, str],
             echo: Callable[[str], None]) -> int:
        echo("Killed")
        return 137

    result = run(Fleet([A], tmp_path / "reports", StderrLog(colour=False), runner=dies),
                 ["verify"], locks)
    assert result.exit_code == 137 and "app-1 (exit 137: Killed)" in result.message
    assert result.live_colour is None


def test_child_command_line_drops_what_the_fleet_sets_per_host() -> None:
    assert child_argv(["--reports", "r", "--json", "--reports=x", "-v", "status"]) == [
        "-v", "status", "--set", "platform.fleet=[]"]
    assert command_at(["--set", "a.b=1", "--config", "c", "-q", "verify", "--digest", "d"]) == 5


@pytest.mark.parametrize(("text", "error"), [
    ('[platform]\nkind = "process"\nfleet = ["ssh://a@b"]\n', 'is for platform.kind = "docker"'),
    ('[platform]\nfleet = ["app-1"]\n', "is not a Docker host URL"),
    ('[platform]\nfleet = ["ssh://a@h", "ssh://b@h"]\n', "names h more than once"),
    ('[platform]\nfleet = "ssh://a@h"\n', "must be an array of strings"),
])
def test_a_fleet_the_config_cannot_mean_is_exit_2(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bgci.toml"
    path.write_text('app = "shop"\n' + text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert error in str(caught.value)


def bgci(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BGCI_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "DOCKER_"))}
    return subprocess.run([sys.executable, "-m", "bgci", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


FLEET = ('app = "shop"\n[platform]\nfleet = ["ssh://nobody@127.0.0.1:1", '
         '"ssh://nobody@127.0.0.2:1"]\n')


def test_from_the_command_line_an_unreachable_fleet_is_exit_3_with_a_report(
        tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(FLEET)
    out = bgci(tmp_path, "switch")
    assert out.returncode == 3, out
    assert "2 of 2 hosts did not answer: 127.0.0.1_1: " in out.stderr, out.stderr
    assert "nothing was changed on any host" in out.stderr
    assert "Traceback" not in out.stderr
    report = json.loads((tmp_path / "bgci-reports" / "switch.json").read_text())
    assert report["exit_code"] == 3 and report["live_color"] is None
    assert not (tmp_path / "bgci-reports" / "hosts").exists(), "no host was asked to switch"


@pytest.mark.parametrize(("args", "words"), [
    (("logs", "live"), ["bgci logs acts on one host", "DOCKER_HOST=ssh://nobody@127.0.0.1:1"]),
    (("deploy",), ["on a fleet (platform.fleet) run the stages one by one"]),
    (("build",), ["a fleet's hosts pull each release from a registry", "build.push = true"]),
])
def test_what_a_fleet_cannot_do_in_one_go_is_exit_2_naming_the_way(
        tmp_path: Path, args: tuple[str, ...], words: list[str]) -> None:
    (tmp_path / "bgci.toml").write_text(FLEET)
    out = bgci(tmp_path, *args)
    assert out.returncode == 2, out
    for word in words:
        assert word in out.stderr, out.stderr


def test_deploy_green_without_image_takes_the_build_the_fleet_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bgci build`` records the release in the fleet's reports dir; each host's run has a
    reports dir of its own, so the fleet hands the release on to every host."""
    from bgci.app import Options
    from bgci.app import run_stage as run_app_stage

    (tmp_path / "bgci.toml").write_text(FLEET)
    reports = tmp_path / "bgci-reports"
    reports.mkdir()
    built = "registry.example/shop:v1@sha256:" + "1" * 64
    (reports / "build.json").write_text(json.dumps({"app": "shop", "image": built, "exit_code": 0}))
    handed: dict[str, str] = {}

    def hosts(fleet: Fleet, stage: str, argv: list[str], result: StageResult,
              reach: object, lock: object) -> None:
        handed.update(fleet.environ)

    monkeypatch.setattr("bgci.fleet.run_stage", hosts)
    monkeypatch.delenv("BGCI_IMAGE", raising=False)
    options = Options(config=str(tmp_path / "bgci.toml"), reports=str(reports),
                      argv=("deploy-green",))
    assert run_app_stage(options, "deploy-green", lambda d, r: None) == 0
    assert handed["BGCI_IMAGE"] == built
