"""Hooks without an engine: hooks.on_failure through the real CLI (a failing build needs no
platform), the runner's hook process (timeouts, background children) and the hook keys' checks.
The lifecycle hooks on a real platform (run_in = "green", a failing pre_switch) are proven end to
end in tests/e2e/test_migrations.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bgci.commands import on_runner
from bgci.config import load_config
from bgci.errors import ConfigError


def bgci(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BGCI_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_"))}
    env.pop("CI", None)
    return subprocess.run([sys.executable, "-m", "bgci", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def failing_build_project(root: Path, on_failure: str) -> Path:
    """A project whose build fails in build.test_command (exit 1) before any platform is used."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bgci.toml").write_text(
        'app = "shop"\n[build]\ntest_command = "echo tests are red; exit 3"\n'
        f"[platform]\nkind = \"process\"\nstate_dir = \"{root / 'state'}\"\n{on_failure}")
    return root


def cases(root: Path, stage: str) -> dict[str, ET.Element]:
    xml = ET.parse(root / "bgci-reports" / f"{stage}.xml").getroot()
    return {case.get("name", ""): case for case in xml.iter("testcase")}


def test_on_failure_runs_after_a_failed_stage_with_its_facts_and_is_a_junit_case(
        tmp_path: Path) -> None:
    seen = tmp_path / "seen.env"
    root = failing_build_project(tmp_path / "p", (
        "[hooks.on_failure]\n"
        f"command = \"env | grep '^BGCI_' | sort > {seen}; echo paging on-call\"\n"))
    out = bgci("build", "--tag", "t1", cwd=root)
    assert out.returncode == 1, out.stderr  # the stage's outcome, not the hook's
    facts = dict(line.split("=", 1) for line in seen.read_text().splitlines())
    assert facts["BGCI_STAGE"] == "build" and facts["BGCI_OUTCOME"] == "failed"
    assert facts["BGCI_EXIT_CODE"] == "1" and "test_command failed" in facts["BGCI_MESSAGE"]
    assert facts["BGCI_APP"] == "shop"
    case = cases(root, "build")["hook on_failure"]
    assert case.find("failure") is None
    assert "paging on-call" in (case.findtext("system-out") or "")
    report = json.loads((root / "bgci-reports" / "build.json").read_text())
    assert report["exit_code"] == 1 and report["status"] == "failed"
    assert [c["name"] for c in report["checks"]] == ["test_command", "hook on_failure"]


def test_on_failure_is_limited_to_the_stages_it_names(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    root = failing_build_project(tmp_path / "p", (
        f"[hooks.on_failure]\ncommand = \"touch {marker}\"\nstages = \"switch, rollback\"\n"))
    out = bgci("build", "--tag", "t1", cwd=root)
    assert out.returncode == 1
    assert not marker.exists()
    assert "hook on_failure" not in cases(root, "build")


def test_a_failing_on_failure_hook_is_reported_but_keeps_the_stage_exit_code(
        tmp_path: Path) -> None:
    root = failing_build_project(tmp_path / "p", (
        "[hooks.on_failure]\ncommand = \"echo cannot reach the pager >&2; exit 7\"\n"))
    out = bgci("build", "--tag", "t1", cwd=root)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    failure = cases(root, "build")["hook on_failure"].find("failure")
    assert failure is not None and "exited 7" in failure.get("message", "")
    assert "cannot reach the pager" in (failure.text or "")


def test_on_failure_does_not_run_for_a_passing_stage(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    root = tmp_path / "p"
    root.mkdir()
    (root / "bgci.toml").write_text(
        f'app = "shop"\n[platform]\nkind = "process"\nstate_dir = "{root / "state"}"\n'
        f'[hooks.on_failure]\ncommand = "touch {marker}"\n')
    out = bgci("lock", "status", cwd=root)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_runner_hook_that_times_out_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()
    code, output = on_runner(f"echo started; sh -c 'echo $$ > {pids}; sleep 30'; echo never",
                             {}, 1.0, str(tmp_path))
    assert time.monotonic() - started < 10
    assert code == 124 and "started" in output and "timed out after 1s" in output
    assert "never" not in output
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), f"the hook's child {child} survived the timeout"


def test_a_background_child_of_a_runner_hook_cannot_hang_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    started = time.monotonic()
    code, output = on_runner(f"sleep 30 & echo $! > {pid_file}; echo done", {"X": "1"}, 20.0,
                             str(tmp_path))
    try:
        assert code == 0 and output.strip() == "done"
        assert time.monotonic() - started < 10  # a pipe would wait for the sleep to end
    finally:
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)  # the test's own background child, by its pid


def load(tmp_path: Path, text: str) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n' + text)
    load_config(cwd=tmp_path, environ={})


@pytest.mark.parametrize(("text", "expected"), [
    ('[hooks.on_failure]\ncommand = "x"\nrun_in = "green"\n', "hooks.on_failure.run_in"),
    ('[hooks.on_failure]\nstages = "deploy_green"\n', "did you mean 'deploy-green'"),
    ('[hooks.on_failure]\nstages = "status"\n', "not a stage"),
    ('[hooks.pre_switch]\ncommand = "x"\ntimeout = 0\n', "hooks.pre_switch.timeout"),
    ("[verify]\nagainst_blue = true\n", "needs verify.smoke or verify.smoke_command"),
    ('[verify]\nsmoke = "smoke"\nsmoke_command = "tox -e smoke"\n',
     "verify.smoke and verify.smoke_command are both set"),
])
def test_hook_and_against_blue_keys_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert expected in str(caught.value)


def test_hook_keys_read_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n[verify]\nsmoke = "smoke"\n')
    config = load_config(cwd=tmp_path, environ={
        "BGCI_HOOKS_ON_FAILURE_COMMAND": "notify-pager", "BGCI_HOOKS_ON_FAILURE_STAGES": "switch",
        "BGCI_VERIFY_AGAINST_BLUE": "true"})
    assert config.hooks.on_failure.command == "notify-pager"
    assert config.hooks.on_failure.stage_list == ("switch",)
    assert config.verify.against_blue is True
    assert load_config(cwd=tmp_path, environ={}).hooks.on_failure.stage_list[:2] == (
        "build", "deploy-green")


def test_against_blue_runs_with_a_smoke_command_too(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(
        'app = "shop"\n[verify]\nagainst_blue = true\nsmoke_command = "tox -e smoke"\n')
    config = load_config(cwd=tmp_path, environ={})
    assert (config.verify.against_blue, config.verify.smoke_command) == (True, "tox -e smoke")
