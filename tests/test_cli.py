"""The CLI as a user meets it, run as a real subprocess: help, version, exit codes, reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from bgci import __version__
from bgci.cli.tools import since_time


def bgci(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BGCI_", "GITHUB_", "GITLAB_",
                                                                      "CI_", "JENKINS_"))}
    clean.pop("CI", None)
    return subprocess.run([sys.executable, "-m", "bgci", *args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def test_help_lists_stages_and_exit_codes(tmp_path: Path) -> None:
    out = bgci("--help", cwd=tmp_path)
    assert out.returncode == 0
    for word in ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire", "deploy"):
        assert word in out.stdout
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"  {code:>3}  " in out.stdout
    assert bgci("--version", cwd=tmp_path).stdout.strip() == f"bgci, version {__version__}"


def test_bad_config_exits_2_without_traceback_and_still_reports(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n[router]\nlisten = "nowhere"\n')
    out = bgci("switch", cwd=tmp_path)
    assert out.returncode == 2
    assert "router.listen" in out.stderr and "host:port" in out.stderr
    assert "Traceback" not in out.stderr
    report = json.loads((tmp_path / "bgci-reports" / "switch.json").read_text())
    assert report["exit_code"] == 2 and report["status"] == "error"
    assert "<error" in (tmp_path / "bgci-reports" / "switch.xml").read_text()


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    out = bgci("switch", "--nope", cwd=tmp_path)
    assert out.returncode == 2 and "No such option" in out.stderr


def test_docker_unreachable_is_exit_3(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n')
    out = bgci("--reports", "out", "status", cwd=tmp_path,
               env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert out.returncode == 3, out.stderr
    assert "cannot reach the docker engine at unix:///nonexistent/docker.sock" in out.stderr
    assert "Traceback" not in out.stderr
    assert (tmp_path / "out" / "status.xml").is_file()


def test_deploy_green_without_an_image_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n')
    out = bgci("--json", "deploy-green", cwd=tmp_path)
    assert out.returncode == 2
    assert "pass --image REF" in out.stderr and "bgci build" in out.stderr
    assert json.loads(out.stdout)["exit_code"] == 2


def test_github_outputs_are_written_even_on_failure(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n')
    output, summary = tmp_path / "gh_output", tmp_path / "gh_summary"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    out = bgci("verify", cwd=tmp_path, env=env)
    assert out.returncode == 3
    assert "report<<ghadelimiter_" in output.read_text()
    assert "verify" in summary.read_text()


def test_global_options_after_the_command_are_taken_as_global() -> None:
    from bgci.cli import hoist_globals

    assert hoist_globals(["status", "--json"]) == ["--json", "status"]
    assert hoist_globals(["--config", "x.toml", "switch", "--force", "-vv", "--set", "a.b=1"]) == [
        "--config", "x.toml", "-vv", "--set", "a.b=1", "switch", "--force"]
    assert hoist_globals(["lock", "status", "--json"]) == ["--json", "lock", "status"]
    assert hoist_globals(["exec", "blue", "--", "ls", "--json"]) == [
        "exec", "blue", "--", "ls", "--json"]
    # the command `bgci exec` runs keeps its own flags, with or without a "--"
    assert hoist_globals(["exec", "live", "python", "-v", "--json"]) == [
        "exec", "live", "python", "-v", "--json"]
    assert hoist_globals(["exec", "--json", "live", "python", "-q"]) == [
        "--json", "exec", "live", "python", "-q"]


def test_since_takes_a_span_or_a_time() -> None:
    assert abs((since_time("10m") or 0) - (time.time() - 600)) < 5
    assert since_time("2026-11-30T07:00:00") == 1796022000.0
    assert since_time(None) is None
    with pytest.raises(click.BadParameter, match="expected a span like 10m"):
        since_time("yesterday")


def test_status_json_after_the_command_in_an_empty_directory_writes_nothing(tmp_path: Path) -> None:
    out = bgci("status", "--json", cwd=tmp_path)
    assert out.returncode == 2
    assert json.loads(out.stdout)["stage"] == "status"
    assert str(tmp_path / "bgci.toml") in out.stderr
    assert not (tmp_path / "bgci-reports").exists(), "a read-only look must leave nothing"


def test_a_failure_is_a_github_annotation_and_no_colour_without_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n[health]\ntimeout = -1\n')
    out = bgci("status", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 2
    assert f"::error file={tmp_path / 'bgci.toml'},line=3,title=bgci::bgci status error (exit 2)" \
        in out.stderr, out.stderr
    assert "\x1b[" not in out.stderr + out.stdout
