"""The three wrappers as a team installs them, on the embedded default: each installs bgci with
its own defaults only (no extra named anywhere: the managed Traefik comes with bgci) and deploys
v1, then v2, and rolls back on the process platform with a managed Traefik. Along the way, what
the issue behind them found broken: a release copied inside a job holds neither the wrapper's
virtualenv nor the reports; the action's `report` output is absolute; and the router a job started
keeps serving, and is still managed, after the runner deleted that job's virtualenv.

The app is the repository's root (the build context), as in a team's repository: the GitLab and
Jenkins wrappers' default virtualenv, `.bgci-venv`, lands inside it. Each test installs bgci from
source at least once (about half a minute): they are slow, and each proves one wrapper."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.integrations.support import (
    AppRepo,
    assert_junit,
    git,
    pip_find_links,
    release_files,
    router_pid,
)
from tests.integrations.test_github_action import act, outputs
from tests.integrations.test_gitlab_template import gitlab_ci_local, job_results
from tests.integrations.test_jenkins_library import harness, steps

pytestmark = pytest.mark.e2e

# Never in a release: the wrappers' virtualenv, the reports, version control (bgci's own rule),
# and what the example's .dockerignore lists (the smoke suite, the config; in these repositories
# also bgci-src, templates and wheels).
NEVER = (".bgci-venv/", "bgci-reports/", ".git/", "smoke/", "bgci.toml", "bgci-src/",
         "templates/", "wheels/")
ProcessRepo = Callable[[str], tuple[AppRepo, Path]]


def assert_served(repo: AppRepo, colour: str, version: str) -> None:
    answer = requests.get(f"{repo.live_url}/version", timeout=10)
    assert (answer.headers["X-Bgci-Color"], answer.json()["version"]) == (colour, version)


def assert_releases_are_the_app(state: Path, app: str, **versions: str) -> None:
    for release, version in versions.items():
        files = release_files(state, app, release)
        assert {"app.py", "requirements.txt", "VERSION"} <= set(files), files
        assert not [f for f in files if f.startswith(NEVER)], files
        version_file = state / app / "releases" / release / "app" / "VERSION"
        assert version_file.read_text().strip() == version


# -- GitHub Actions (act) ------------------------------------------------------------------------
# Two jobs, two act runs, as two workflow runs would be: the first deploys v1 and leaves the
# managed Traefik running; act deletes that job's RUNNER_TEMP, bgci's virtualenv with it.
GITHUB_V1 = """\
name: v1
on: push
permissions: {}
jobs:
  v1:
    runs-on: ubuntu-latest
    env:
      PIP_FIND_LINKS: @WHEELS@
    steps:
      - uses: actions/checkout@v4
      - id: v1
        uses: ./bgci-src
        with:
          stage: deploy
          args: --tag v1
      - name: keep what the job made
        if: always()
        env:
          STEPS: ${{ toJSON(steps) }}
        run: |
          printf '%s' "$STEPS" > "$TEST_OUT/steps.json"
          printf '%s' "$RUNNER_TEMP/bgci-venv" > "$TEST_OUT/venv.txt"
"""

GITHUB_V2 = """\
name: v2
on: push
permissions: {}
jobs:
  v2:
    runs-on: ubuntu-latest
    env:
      PIP_FIND_LINKS: @WHEELS@
    steps:
      - uses: actions/checkout@v4
      - run: echo 2.0.0 > VERSION
      - id: build
        uses: ./bgci-src
        with:
          stage: build
          args: --tag v2
      - id: green
        uses: ./bgci-src
        with:
          stage: deploy-green
      - id: verify
        uses: ./bgci-src
        with:
          stage: verify
      - id: switch
        uses: ./bgci-src
        with:
          stage: switch
      - name: who answers after the switch
        run: curl -sS --max-time 5 "$LIVE_URL/version" > "$TEST_OUT/after-switch.json"
        env:
          LIVE_URL: ${{ steps.switch.outputs.live-url }}
      - id: rollback
        uses: ./bgci-src
        with:
          stage: rollback
      - name: the verify report, from another directory
        working-directory: /
        env:
          REPORT: ${{ steps.verify.outputs.report }}
        run: cp "$REPORT" "$TEST_OUT/verify.xml"
      - name: keep what the job made
        if: always()
        env:
          STEPS: ${{ toJSON(steps) }}
        run: |
          printf '%s' "$STEPS" > "$TEST_OUT/steps.json"
          cp -r bgci-reports "$TEST_OUT/reports"
"""


def test_action_defaults_deploy_v1_v2_and_roll_back(tmp_path: Path,
                                                    process_repo: ProcessRepo) -> None:
    repo, state = process_repo("ghd")
    wheels = pip_find_links()
    repo.write(".github/workflows/v1.yml", GITHUB_V1.replace("@WHEELS@", wheels))
    repo.write(".github/workflows/v2.yml", GITHUB_V2.replace("@WHEELS@", wheels))
    repo.commit("workflows")
    first, second = tmp_path / "out-v1", tmp_path / "out-v2"
    first.mkdir()
    second.mkdir()

    ran = act(repo, "v1.yml", first, timeout=420)

    assert ran.returncode == 0, ran.tail()
    assert outputs(json.loads((first / "steps.json").read_text()), "v1")["live-color"] == "blue"
    assert_served(repo, "blue", "1.0.0")
    pid = router_pid(state, repo.app)
    assert pid is not None
    # the router runs from its copy in the state dir, not from the job's virtualenv
    exe = Path(f"/proc/{pid}/exe").resolve()
    assert exe == (state / repo.app / "router" / "bin" / "traefik").resolve(), exe
    # the runner deletes the job's temporary directory, and bgci's virtualenv with it
    venv = Path((first / "venv.txt").read_text())
    shutil.rmtree(venv, ignore_errors=True)
    assert not venv.exists()
    assert_served(repo, "blue", "1.0.0")

    ran = act(repo, "v2.yml", second, timeout=600)

    assert ran.returncode == 0, ran.tail()
    steps_ = json.loads((second / "steps.json").read_text())
    for step in ("build", "green", "verify", "switch", "rollback"):
        assert steps_[step]["outcome"] == "success", (step, steps_[step])
    assert outputs(steps_, "green")["preview-url"] == repo.preview_url
    assert outputs(steps_, "switch")["live-color"] == "green"
    assert json.loads((second / "after-switch.json").read_text())["version"] == "2.0.0"
    assert outputs(steps_, "rollback")["live-color"] == "blue"
    assert_served(repo, "blue", "1.0.0")
    # the router of the first job, still the one serving, was managed by the second
    assert router_pid(state, repo.app) == pid
    # every `report` output is an absolute path; a step elsewhere found it
    for step, stage in (("build", "build"), ("green", "deploy-green"), ("verify", "verify"),
                        ("switch", "switch"), ("rollback", "rollback")):
        report = outputs(steps_, step)["report"]
        assert os.path.isabs(report) and report.endswith(f"/bgci-reports/{stage}.xml"), report
    assert "bgci.verify" in (second / "verify.xml").read_text()
    assert_junit(second / "reports", ("build", "deploy-green", "verify", "switch", "rollback"))
    assert_releases_are_the_app(state, repo.app, v1="1.0.0", v2="2.0.0")


# -- GitLab CI (gitlab-ci-local), the CI/CD component ---------------------------------------------
# The component of this very project at this very commit, as GitLab's docs test a component in
# its own project. Its inputs are the defaults but for `source` (required). Without
# --shell-isolation every job runs in the project directory, as jobs on one runner share a build
# directory: the default venv, $CI_PROJECT_DIR/.bgci-venv, is made once, inside the build context.
GITLAB = """\
include:
  - component: $CI_SERVER_FQDN/bgci/itest/bgci@$CI_COMMIT_SHA
    inputs:
      source: $CI_PROJECT_DIR/bgci-src

stages: [.pre, build, deploy]

variables:
  PIP_FIND_LINKS: @WHEELS@

seed-v1:
  extends: .bgci
  stage: .pre
  variables:
    BGCI_STAGE: deploy
    BGCI_ARGS: --tag v1
  before_script:
    - echo 1.0.0 > VERSION
  after_script:
    - echo 2.0.0 > VERSION

bgci-build:
  variables:
    BGCI_ARGS: --tag v2
"""


def test_gitlab_component_defaults_deploy_v1_v2_and_roll_back(
        tmp_path: Path, process_repo: ProcessRepo) -> None:
    repo, state = process_repo("gld")
    (repo.root / "VERSION").write_text("2.0.0\n")
    repo.write(".gitlab-ci.yml", GITLAB.replace("@WHEELS@", pip_find_links()))
    git(repo.root, "remote", "add", "origin", "git@gitlab.invalid:bgci/itest.git")
    repo.commit("pipeline")
    out = tmp_path / "out"
    out.mkdir()

    ran = gitlab_ci_local(repo.root, out, "--manual", "bgci-switch", "--manual", "bgci-rollback",
                          timeout=600, isolated=False)

    assert ran.returncode == 0, ran.tail()
    jobs = ("seed-v1", "bgci-build", "bgci-deploy-green", "bgci-verify", "bgci-switch",
            "bgci-rollback")
    assert job_results(ran) == {job: "PASS" for job in jobs}, ran.tail(40)
    assert ran.output.count("bgci: installed bgci") == 1, ran.output  # then reused
    assert (repo.root / ".bgci-venv" / "bin" / "bgci").is_file()
    assert_served(repo, "blue", "1.0.0")
    assert_junit(repo.root / "bgci-reports", ("deploy-green", "verify", "switch", "rollback"))
    assert_releases_are_the_app(state, repo.app, v1="1.0.0", v2="2.0.0")


# -- Jenkins (the Groovy harness) ----------------------------------------------------------------
JENKINS = """\
    Map common = [source: "${env.WORKSPACE}/bgci-src", env: [PIP_FIND_LINKS: '@WHEELS@']]
    Map v1 = bgci.run(common + [stage: 'deploy', args: '--tag v1'])
    new File("${env.WORKSPACE}/VERSION").text = '2.0.0\\n'
    Map built = bgci.build(common + [args: '--tag v2'])
    Map green = bgci.deployGreen(common)
    bgci.verify(common)
    Map switched = bgci.switchTraffic(common)
    Map back = bgci.rollback(common)
    return [v1: v1, built: built, green: green, switched: switched, back: back]
"""


def test_jenkins_step_defaults_deploy_v1_v2_and_roll_back(tmp_path: Path,
                                                          process_repo: ProcessRepo) -> None:
    repo, state = process_repo("jkd")

    record = harness(tmp_path, JENKINS.replace("@WHEELS@", pip_find_links()),
                     workspace=repo.root, timeout=600)

    assert "error" not in record, record.get("error", "") + record["output"][-4000:]
    result = record["result"]
    assert result["v1"]["BGCI_LIVE_COLOR"] == "blue"
    assert result["built"]["BGCI_IMAGE"] == "v2"
    assert result["green"]["BGCI_PREVIEW_URL"] == repo.preview_url
    assert result["switched"]["BGCI_LIVE_COLOR"] == "green"
    assert result["back"]["BGCI_LIVE_COLOR"] == "blue"
    assert record["output"].count(f"bgci: installed into {repo.root}/.bgci-venv") == 1
    assert all(call["exitCode"] == 0 for call in steps(record, "sh"))
    assert_served(repo, "blue", "1.0.0")
    assert_releases_are_the_app(state, repo.app, v1="1.0.0", v2="2.0.0")
