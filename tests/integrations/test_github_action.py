"""The GitHub Action (action.yml) run for real by act on this machine (host mode, no images):
a blue-green cycle of the example app on the real Docker engine, and bad inputs that must fail
before anything runs. Also: actionlint and zizmor report nothing on the action and workflows."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integrations.support import (
    REPO,
    AppRepo,
    Ran,
    assert_junit,
    clean_env,
    fake_calls,
    make_fake_bgci_wheel,
    make_repo,
    run,
    tool,
)

pytestmark = pytest.mark.e2e

# act copies the local repository for actions/checkout (nothing is fetched), so `uses: ./`
# finds action.yml; every other step only uses the action under test.
DEPLOY_WORKFLOW = """\
name: bgci action test
on: push
permissions: {}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: v1
        uses: ./
        with:
          stage: deploy
          working-directory: app
          args: --tag v1
      - name: make v2
        run: echo 2.0.0 > app/VERSION
      - id: build
        uses: ./
        with:
          stage: build
          working-directory: app
          args: --tag v2
      - id: green
        uses: ./
        with:
          stage: deploy-green
          working-directory: app
      - id: verify
        uses: ./
        with:
          stage: verify
          working-directory: app
      - id: switch
        uses: ./
        with:
          stage: switch
          working-directory: app
          set: |
            switch.confirm_requests=8
      - name: who answers after the switch
        run: curl -sS --max-time 5 "$LIVE_URL/version" > "$TEST_OUT/after-switch.json"
        env:
          LIVE_URL: ${{ steps.switch.outputs.live-url }}
      - id: rollback
        uses: ./
        with:
          stage: rollback
          working-directory: app
      - name: keep what the job made
        if: always()
        env:
          STEPS: ${{ toJSON(steps) }}
        run: |
          printf '%s' "$STEPS" > "$TEST_OUT/steps.json"
          cp -r app/bgci-reports "$TEST_OUT/reports"
"""

BAD_INPUT_WORKFLOW = """\
name: bgci action bad inputs
on: push
permissions: {}
jobs:
  bad:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: unknown_stage
        continue-on-error: true
        uses: ./
        with:
          stage: nuke
      - id: stage_injection
        continue-on-error: true
        uses: ./
        with:
          stage: "status; touch @PWNED@/stage"
      - id: args_semicolon
        continue-on-error: true
        uses: ./
        with:
          stage: status
          args: "--history 1; touch @PWNED@/semicolon"
      - id: args_substitution
        continue-on-error: true
        uses: ./
        with:
          stage: status
          args: "--history $(touch @PWNED@/substitution)"
      - id: args_backticks
        continue-on-error: true
        uses: ./
        with:
          stage: status
          args: "`touch @PWNED@/backticks`"
      - id: set_newline
        continue-on-error: true
        uses: ./
        with:
          stage: status
          set: |
            health.interval=0.2
            $(touch @PWNED@/set)
      - id: source_option
        continue-on-error: true
        uses: ./
        with:
          stage: status
          source: "--index-url=http://127.0.0.1:9/"
      - name: nothing ran
        env:
          STEPS: ${{ toJSON(steps) }}
        run: |
          printf '%s' "$STEPS" > "$TEST_OUT/steps.json"
          ls -a > "$TEST_OUT/workspace.txt"
          if [ -e "$RUNNER_TEMP/bgci-venv" ]; then echo installed > "$TEST_OUT/venv.txt"; fi
      - id: config_substitution
        continue-on-error: true
        uses: ./
        with:
          stage: status
          config: "$(touch @PWNED@/config).toml"
          reports: config-reports
          source: ${{ github.workspace }}/dist/fake_bgci-0-py3-none-any.whl
      - name: keep the outcome
        env:
          OUTCOME: ${{ steps.config_substitution.outcome }}
        run: printf '%s' "$OUTCOME" > "$TEST_OUT/config-outcome.txt"
"""


def act(repo: AppRepo, workflow: str, out: Path, *env_args: str, timeout: float = 300) -> Ran:
    """``act push`` of one workflow file in host mode (no job image), output kept in out/act.log;
    ``env_args`` are more ``NAME=value`` for the workflow's environment."""
    env = clean_env({"XDG_CACHE_HOME": str(out / "xdg-cache")})
    argv = [tool("act"), "push", "-W", f".github/workflows/{workflow}",
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--action-offline-mode",
            "--env", f"TEST_OUT={out}"]
    for item in env_args:
        argv += ["--env", item]
    return run(argv, cwd=repo.root, env=env, timeout=timeout, log=out / "act.log")


def outputs(steps: Mapping[str, Any], step: str) -> dict[str, str]:
    return dict(steps[step]["outputs"])


def test_action_runs_a_blue_green_cycle_and_sets_its_outputs(
        tmp_path: Path, deployable_repo: Callable[..., AppRepo]) -> None:
    repo = deployable_repo("gh")
    repo.write(".github/workflows/deploy.yml", DEPLOY_WORKFLOW)
    repo.commit("workflow")
    out = tmp_path / "out"
    out.mkdir()

    ran = act(repo, "deploy.yml", out, timeout=420)

    assert ran.returncode == 0, ran.tail()
    steps = json.loads((out / "steps.json").read_text())
    for step in ("v1", "build", "green", "verify", "switch", "rollback"):
        assert steps[step]["outcome"] == "success", (step, steps[step])
    v1, build, green = outputs(steps, "v1"), outputs(steps, "build"), outputs(steps, "green")
    switch, rollback = outputs(steps, "switch"), outputs(steps, "rollback")

    assert v1["live-color"] == "blue"
    assert v1["image"] == f"{repo.app}:v1"
    assert build["image"] == f"{repo.app}:v2"
    assert build["digest"].startswith("sha256:") and build["digest"] != v1["digest"]
    assert green["idle-color"] == "green" and green["live-color"] == "blue"
    assert green["preview-url"] == repo.preview_url
    assert green["image"] == build["image"] and green["digest"] == build["digest"]
    assert switch["live-color"] == "green" and switch["live-url"] == repo.live_url
    assert rollback["live-color"] == "blue"
    for step, stage in (("v1", "switch"), ("build", "build"), ("green", "deploy-green"),
                        ("verify", "verify"), ("switch", "switch"), ("rollback", "rollback")):
        assert outputs(steps, step)["report"].endswith(f"bgci-reports/{stage}.xml")

    # what the live address said in between, and says now
    assert json.loads((out / "after-switch.json").read_text())["version"] == "2.0.0"
    answer = requests.get(f"{repo.live_url}/version", timeout=10)
    assert answer.headers["X-Bgci-Color"] == "blue" and answer.json()["version"] == "1.0.0"

    assert_junit(out / "reports", ("build", "deploy-green", "verify", "switch", "rollback"))
    # bgci wrote the job summary and folded its log itself (act echoes both)
    assert "Summary - ### ✅ bgci rollback: passed (exit 0)" in ran.output, ran.tail()
    assert "::group::build " in ran.output


def test_action_rejects_bad_inputs_before_running_anything(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    repo = make_repo(tmp_path / "repo", "gh-bad", with_app=False)
    repo.write(".github/workflows/bad.yml", BAD_INPUT_WORKFLOW.replace("@PWNED@", str(pwned)))
    make_fake_bgci_wheel(repo.root / "dist")
    repo.commit("workflow")
    out = tmp_path / "out"
    out.mkdir()
    log = out / "fake-bgci.log"

    ran = act(repo, "bad.yml", out, f"FAKE_BGCI_LOG={log}", "FAKE_BGCI_EXIT=2")

    assert ran.returncode == 0, ran.tail()
    steps = json.loads((out / "steps.json").read_text())
    for step in ("unknown_stage", "stage_injection", "args_semicolon", "args_substitution",
                 "args_backticks", "set_newline", "source_option"):
        assert steps[step]["outcome"] == "failure", (step, steps[step])
    # What each bad input prints is asserted in tests/test_action_inputs.py, not here: act's host
    # runner returns on a failing step's exit status before its terminal's output is all copied
    # (pkg/container/host_environment.go), so the last lines of a failing step may be missing
    # from its log. GitHub's runner reads a step's output to its end.
    # nothing was installed and no stage wrote a report
    assert not (out / "venv.txt").exists()
    assert "bgci-reports" not in (out / "workspace.txt").read_text()
    # a config path reaches bgci (here a fake installed from `source`) as one literal argument;
    # the reports dir as an absolute path, in the step's working directory
    (call,) = fake_calls(log)
    assert call["argv"] == ["--config", f"$(touch {pwned}/config).toml", "--reports",
                            os.path.join(call["cwd"], "config-reports"), "status"]
    assert (out / "config-outcome.txt").read_text() == "failure"
    assert sorted(pwned.iterdir()) == [], "an injected command ran"


def test_linters_report_nothing_on_the_action_and_workflows() -> None:
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflow in .github/workflows"
    env = clean_env()
    lint = run([tool("actionlint"), *map(str, workflows)], cwd=REPO, env=env, timeout=120)
    assert lint.returncode == 0 and not lint.output.strip(), lint.output
    audit = run([tool("zizmor"), "--offline", "--no-progress", "action.yml", *map(str, workflows)],
                cwd=REPO, env=env, timeout=120)
    assert audit.returncode == 0 and "No findings" in audit.output, audit.output


REUSABLE_CALLER = """\
name: bgci reusable workflow
on: push
permissions: {}
jobs:
  deploy:
    uses: ./.github/workflows/blue-green.yml
    with:
      source: @WHEEL@
      working-directory: app
      tag: v7
      set: |
        health.interval=0.2
        hooks.pre_switch.command=echo $(id); touch @PWNED@/set
  back:
    needs: deploy
    uses: ./.github/workflows/blue-green.yml
    with:
      source: @WHEEL@
      working-directory: app
      rollback: true
"""


UPLOAD_STAND_IN = """\
name: upload-artifact stand-in
inputs:
  name: {required: true}
  path: {required: true}
  if-no-files-found: {required: false}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        UPLOAD: ${{ inputs.path }}
      run: printf '%s %s\\n' "$NAME" "$UPLOAD" >> "$TEST_OUT/uploads.txt"
"""


def test_reusable_workflow_runs_the_pipeline_and_the_rollback_job(tmp_path: Path) -> None:
    """.github/workflows/blue-green.yml called as a team would: green (build, deploy-green,
    verify), then switch behind the environment; with rollback: true only the rollback job. A
    fake bgci (installed from `source`) shows what each job ran, where and with which options."""
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    repo = make_repo(tmp_path / "repo", "gh-reusable", with_app=False)
    # act fetches no action from the network: a local stand-in records what would be uploaded
    workflow = (REPO / ".github" / "workflows" / "blue-green.yml").read_text()
    upload = re.compile(r"uses: actions/upload-artifact@[0-9a-f]{40} # v\S+")
    assert len(upload.findall(workflow)) == 2
    repo.write(".github/workflows/blue-green.yml",
               upload.sub("uses: ./.github/actions/upload-stand-in", workflow))
    repo.write(".github/actions/upload-stand-in/action.yml", UPLOAD_STAND_IN)
    wheel = make_fake_bgci_wheel(tmp_path / "dist")
    repo.write(".github/workflows/caller.yml",
               REUSABLE_CALLER.replace("@PWNED@", str(pwned)).replace("@WHEEL@", str(wheel)))
    repo.write("app/bgci.toml", 'app = "shop"\n')
    repo.commit("workflows")
    out = tmp_path / "out"
    out.mkdir()
    log = out / "fake-bgci.log"

    ran = act(repo, "caller.yml", out, f"FAKE_BGCI_LOG={log}", timeout=420)

    assert ran.returncode == 0, ran.tail()
    calls = fake_calls(log)
    stages = [call["argv"][-1] if call["argv"][-2:-1] != ["build"] else "build" for call in calls]
    assert stages == ["build", "deploy-green", "verify", "switch", "rollback"], calls
    # each job on a runner of its own, in working-directory, with the reports dir there
    for call in calls:
        reports = os.path.join(call["cwd"], "bgci-reports")
        assert call["cwd"].endswith("/app")
        assert call["argv"][:4] == ["--reports", reports, "--set", f"reports.dir={reports}"]
    assert calls[0]["argv"][4:] == ["--set", "health.interval=0.2",
                                    "--set", f"hooks.pre_switch.command=echo $(id); touch {pwned}/set",
                                    "build", "--tag=v7"]
    assert calls[4]["argv"][4:] == ["rollback"]
    assert sorted(pwned.iterdir()) == [], "an input was evaluated by a shell"
    # each deploying job keeps its reports, pass or fail
    assert (out / "uploads.txt").read_text().splitlines() == [
        "bgci-reports-green app/bgci-reports/", "bgci-reports-switch app/bgci-reports/"]
