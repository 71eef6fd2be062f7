"""The GitLab template (ci-templates/gitlab/bgci.yml) run for real by gitlab-ci-local in shell
mode: its ready pipeline through a blue-green cycle of the example app on the real Docker engine,
its gates and opt-out, the project's own .gitlab-ci.yml, and bad input that must fail before
anything runs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.integrations.support import (
    REPO,
    AppRepo,
    Ran,
    assert_junit,
    clean_env,
    git,
    make_repo,
    run,
    tool,
)

pytestmark = pytest.mark.e2e

INCLUDE = """\
include:
  - local: ci-templates/gitlab/bgci.yml
    inputs:
      source: {source}
      working-directory: app
      reports: app/bgci-reports
      venv: {venv}
      environment: itest
      resource-group: bgci-itest
{extra_inputs}
"""

# v1 is deployed by a job of its own, so that the ready pipeline has something to roll back to.
DEPLOY_PIPELINE = """
stages: [.pre, build, deploy, check]

seed-v1:
  extends: .bgci
  stage: .pre
  variables:
    BGCI_STAGE: deploy
    BGCI_ARGS: --tag v1
  before_script:
    - echo 1.0.0 > app/VERSION

bgci-build:
  variables:
    BGCI_ARGS: --tag v2

after-green:
  stage: deploy
  needs: [bgci-deploy-green]
  script:
    - env | grep '^BGCI_' | grep -v -e '^BGCI_ARGS=' -e '^BGCI_STAGE=' | sort > "$OUT/after-green.env"

after-rollback:
  stage: check
  needs: [bgci-rollback]
  script:
    - env | grep '^BGCI_' | grep -v -e '^BGCI_ARGS=' -e '^BGCI_STAGE=' | sort > "$OUT/after-rollback.env"
"""

BAD_PIPELINE = """
stages: [build, deploy, check]

.bad:
  extends: .bgci
  stage: build
  allow_failure: true
  variables:
    BGCI_STAGE: status

unknown-stage:
  extends: .bad
  variables:
    BGCI_STAGE: nuke

stage-injection:
  extends: .bad
  variables:
    BGCI_STAGE: "status; touch @PWNED@/stage"

args-semicolon:
  extends: .bad
  variables:
    BGCI_ARGS: "--history 1; touch @PWNED@/semicolon"

args-substitution:
  extends: .bad
  variables:
    BGCI_ARGS: "--history $(touch @PWNED@/substitution)"

args-backticks:
  extends: .bad
  variables:
    BGCI_ARGS: "`touch @PWNED@/backticks`"

nothing-ran:
  stage: check
  when: always
  script:
    - if [ -e "@VENV@" ]; then echo installed > "$OUT/venv.txt"; fi
    - ls -a app > "$OUT/app.txt"
"""


def gitlab_ci_local(root: Path, out: Path, *args: str, timeout: float = 420,
                    isolated: bool = True) -> Ran:
    """Run the pipeline: each job in a copy of the project (``isolated``, as on a fresh runner),
    or all in the project directory itself (as jobs sharing one runner's build directory)."""
    # gitlab-ci-local sets GITLAB_CI=false on purpose; a GitLab runner sets it to true, and bgci
    # then folds its log into GitLab sections.
    argv = [tool("gitlab-ci-local"), "--home", str(out / "gcl-home"),
            *(["--shell-isolation"] if isolated else []),
            "--no-artifacts-to-source", "--no-color", "--variable", f"OUT={out}",
            "--variable", "GITLAB_CI=true", *args]
    tool("rsync")  # gitlab-ci-local copies each job's files with it
    return run(argv, cwd=root, env=clean_env(), timeout=timeout, log=out / "gitlab-ci-local.log")


def pipeline_repo(repo: AppRepo, out: Path, body: str, extra_inputs: str = "") -> Path:
    """Write .gitlab-ci.yml (the template included with test inputs, then ``body``) and commit:
    gitlab-ci-local copies only tracked files into a job."""
    venv = out / "venv"
    include = INCLUDE.format(source=repo.root, venv=venv, extra_inputs=extra_inputs)
    repo.write(".gitlab-ci.yml", include + body)
    git(repo.root, "remote", "add", "origin", "git@gitlab.invalid:bgci/itest.git")
    repo.commit("pipeline")
    return venv


def job_results(ran: Ran) -> dict[str, str]:
    """The summary at the end of a gitlab-ci-local run: job name -> PASS, WARN or FAIL."""
    found = re.findall(r"^ (PASS|WARN|FAIL) {2}(\S+)\s*(?:pre_script|script|after_script)?\s*$",
                       ran.output, re.MULTILINE)
    return {job: status for status, job in found}


def dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def jobs_listed(root: Path, out: Path) -> dict[str, Any]:
    ran = run([tool("gitlab-ci-local"), "--home", str(out / "gcl-home"), "--list-json"],
              cwd=root, env=clean_env(), timeout=120)
    assert ran.returncode == 0, ran.output
    return {job["name"]: job for job in json.loads(ran.output[ran.output.index("["):])}


def preview(root: Path, out: Path) -> dict[str, Any]:
    """The pipeline as gitlab-ci-local resolves it: includes, inputs and extends expanded."""
    ran = run([tool("gitlab-ci-local"), "--home", str(out / "gcl-home"), "--preview"],
              cwd=root, env=clean_env(), timeout=120)
    assert ran.returncode == 0, ran.output
    lines = ran.output.splitlines()
    config: dict[str, Any] = yaml.safe_load("\n".join(lines[lines.index("---"):]))
    return config


def test_template_pipeline_runs_a_blue_green_cycle_and_passes_dotenv_on(
        tmp_path: Path, deployable_repo: Callable[..., AppRepo]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = deployable_repo("gl", version="2.0.0")
    pipeline_repo(repo, out, DEPLOY_PIPELINE)

    ran = gitlab_ci_local(repo.root, out, "--manual", "bgci-switch", "--manual", "bgci-rollback")

    assert ran.returncode == 0, ran.tail()
    jobs = ("seed-v1", "bgci-build", "bgci-deploy-green", "bgci-verify", "bgci-switch",
            "bgci-rollback", "after-green", "after-rollback")
    assert job_results(ran) == {job: "PASS" for job in jobs}, ran.tail(40)
    # bgci was installed once and reused by the later jobs
    assert ran.output.count("bgci: installed bgci") == 1, ran.output
    # the dotenv report of deploy-green reached the next job as variables
    green = dotenv(out / "after-green.env")
    assert green["BGCI_PREVIEW_URL"] == repo.preview_url
    assert green["BGCI_IMAGE"] == f"{repo.app}:v2"
    assert green["BGCI_IDLE_COLOR"] == "green" and green["BGCI_LIVE_COLOR"] == "blue"
    assert green["BGCI_DIGEST"].startswith("sha256:")
    after = dotenv(out / "after-rollback.env")
    assert after["BGCI_LIVE_COLOR"] == "blue" and after["BGCI_LIVE_URL"] == repo.live_url
    # each job kept its JUnit report as an artifact
    artifacts = repo.root / ".gitlab-ci-local" / "artifacts"
    for job, stage in (("bgci-build", "build"), ("bgci-deploy-green", "deploy-green"),
                       ("bgci-verify", "verify"), ("bgci-switch", "switch"),
                       ("bgci-rollback", "rollback")):
        assert_junit(artifacts / job / "app" / "bgci-reports", [stage])
        assert (artifacts / job / ".gitlab-ci-reports" / "dotenv").is_dir()
    # bgci folded its log into GitLab sections (gitlab-ci-local shows them as "<name>_started")
    assert re.search(r"^bgci-deploy-green +bgci_health_of_green\S*_started$", ran.output,
                     re.MULTILINE), ran.output
    answer = requests.get(f"{repo.live_url}/version", timeout=10)
    assert answer.headers["X-Bgci-Color"] == "blue" and answer.json()["version"] == "1.0.0"


def test_template_gates_switch_and_rollback_and_can_leave_out_its_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = make_repo(tmp_path / "repo", "gl-list", with_app=False)
    pipeline_repo(repo, out, "")
    jobs = jobs_listed(repo.root, out)
    assert jobs["bgci-switch"]["when"] == "manual" and jobs["bgci-switch"]["allow_failure"] is False
    assert jobs["bgci-rollback"]["when"] == "manual"
    assert [n["job"] for n in jobs["bgci-rollback"]["needs"]] == ["bgci-switch"]
    assert [n["job"] for n in jobs["bgci-verify"]["needs"]] == ["bgci-deploy-green"]

    config = preview(repo.root, out)
    for name in ("bgci-deploy-green", "bgci-verify", "bgci-switch", "bgci-rollback"):
        assert config[name]["resource_group"] == "bgci-itest"
        assert config[name]["artifacts"]["when"] == "always"
        assert config[name]["artifacts"]["reports"]["dotenv"] == "app/bgci-reports/bgci.env"
    assert config["bgci-deploy-green"]["environment"] == {"name": "itest-preview",
                                                          "url": "$BGCI_PREVIEW_URL"}
    assert config["bgci-switch"]["environment"] == {"name": "itest", "url": "$BGCI_LIVE_URL"}
    assert config["bgci-build"]["artifacts"]["reports"]["junit"] == "app/bgci-reports/build.xml"

    # switch-when: on_success, and pipeline: false leaves only the hidden jobs
    other = make_repo(tmp_path / "other", "gl-list2", with_app=False)
    pipeline_repo(other, out, "", extra_inputs="      switch-when: on_success\n")
    assert jobs_listed(other.root, out)["bgci-switch"]["when"] == "on_success"
    hidden = make_repo(tmp_path / "hidden", "gl-list3", with_app=False)
    pipeline_repo(hidden, out, "\nmine:\n  extends: .bgci-status\n",
                  extra_inputs="      pipeline: false\n")
    assert listed(hidden.root, out) == {"mine": "on_success"}


def test_template_rejects_bad_input_before_running_anything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    repo = make_repo(tmp_path / "repo", "gl-bad")
    body = BAD_PIPELINE.replace("@PWNED@", str(pwned)).replace("@VENV@", str(out / "venv"))
    pipeline_repo(repo, out, body, extra_inputs="      pipeline: false\n")

    ran = gitlab_ci_local(repo.root, out)

    bad = ("unknown-stage", "stage-injection", "args-semicolon", "args-substitution",
           "args-backticks")
    results = job_results(ran)
    assert {job: results.get(job) for job in bad} == {job: "WARN" for job in bad}, ran.tail(40)
    assert results.get("nothing-ran") == "PASS", ran.tail(40)
    assert "BGCI_STAGE: unknown stage 'nuke'; expected one of: build, deploy-green" in ran.output
    assert "BGCI_STAGE: unknown stage 'status; touch" in ran.output
    assert "BGCI_ARGS: '1;' is not allowed" in ran.output
    assert "BGCI_ARGS: '$(touch' is not allowed" in ran.output
    assert "BGCI_ARGS: '`touch' is not allowed" in ran.output
    for job in bad:
        assert re.search(rf"^{job}\s+> bgci template: invalid input, nothing was run$", ran.output,
                         re.MULTILINE), job
        assert re.search(rf"^{job}\s+finished in .* WARN 2", ran.output, re.MULTILINE), job
    assert not (out / "venv.txt").exists(), "bgci was installed"
    assert "bgci-reports" not in (out / "app.txt").read_text()
    assert sorted(pwned.iterdir()) == [], "an injected command ran"


@pytest.mark.parametrize(("inputs", "message"), [
    ("      switch-when: always\n", "is not in the list of allowed options"),
    ("      pipeline: sure\n", "provided value is not a boolean"),
])
def test_template_refuses_bad_inputs_when_the_pipeline_is_made(
        tmp_path: Path, inputs: str, message: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = make_repo(tmp_path / "repo", "gl-opt", with_app=False)
    pipeline_repo(repo, out, "", extra_inputs=inputs)
    ran = gitlab_ci_local(repo.root, out, timeout=120)
    assert ran.returncode != 0
    assert message in ran.output, ran.output
    assert not job_results(ran)


def test_project_gitlab_ci_parses_and_uses_the_template(tmp_path: Path) -> None:
    """The project's own .gitlab-ci.yml: valid for gitlab-ci-local, runs the test suite and
    deploys the example app through the template's jobs."""
    out = tmp_path / "out"
    out.mkdir()
    repo = make_repo(tmp_path / "repo", "gl-own", with_app=False)
    for name in (".gitlab-ci.yml",):
        (repo.root / name).write_text((REPO / name).read_text())
    git(repo.root, "remote", "add", "origin", "git@gitlab.invalid:bgci/bgci.git")
    repo.commit("own pipeline")
    config = preview(repo.root, out)
    scripts = "\n".join(line for job in config.values() if isinstance(job, dict)
                        for line in _lines(job.get("script")))
    assert "bash scripts/run-tests.sh" in scripts
    assert {"bgci-build", "bgci-deploy-green", "bgci-verify", "bgci-switch",
            "bgci-rollback"} <= set(config)
    assert config["bgci-build"]["variables"]["BGCI_WORKDIR"] == "examples/flask-app"
    # the deployment only where an engine that keeps the state is configured
    assert listed(repo.root, out) == {"tests": "on_success"}
    assert listed(repo.root, out, "--variable", "DEPLOY_DOCKER_HOST=ssh://deploy@host.invalid") == {
        "tests": "on_success", "bgci-build": "on_success", "bgci-deploy-green": "on_success",
        "bgci-verify": "on_success", "bgci-switch": "manual", "bgci-rollback": "manual"}


def listed(root: Path, out: Path, *args: str) -> dict[str, str]:
    """The jobs gitlab-ci-local would run (``--list``): name -> when."""
    ran = run([tool("gitlab-ci-local"), "--home", str(out / "gcl-home"), "--list", *args],
              cwd=root, env=clean_env(), timeout=120)
    assert ran.returncode == 0, ran.output
    lines = ran.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("name "))
    # columns: name, description (empty here), stage, when, allow_failure, needs
    return {line.split()[0]: line.split()[2] for line in lines[header + 1:] if line.strip()}


def _lines(script: Sequence[str] | str | None) -> list[str]:
    if script is None:
        return []
    return [script] if isinstance(script, str) else list(script)
