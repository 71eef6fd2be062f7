"""The Jenkins shared-library step (ci-templates/jenkins/vars/bgci.groovy) loaded by a Groovy
harness with stubbed pipeline steps whose `sh` really runs: a blue-green cycle with the real bgci
on the real Docker engine, the command lines a fake bgci receives, the JUnit publishing in
`finally`, a failing stage failing the step, and bad input refused before anything runs."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integrations.support import (
    JAVA_ENV,
    REPO,
    AppRepo,
    assert_junit,
    clean_env,
    fake_calls,
    junit_suite,
    make_fake_bgci_wheel,
    run,
    tool,
    write_fake_bgci,
)

pytestmark = pytest.mark.e2e

HARNESS = Path(__file__).with_name("jenkins_harness.groovy")
LIBRARY = REPO / "ci-templates" / "jenkins"

def harness(tmp_path: Path, scenario: str, *, env: dict[str, str] | None = None,
            credentials: dict[str, str] | None = None, workspace: Path | None = None,
            timeout: float = 300) -> dict[str, Any]:
    """Run ``scenario`` (Groovy, with ``bgci`` bound to the loaded step) in the harness, in
    ``workspace`` (default tmp_path/workspace); return the record: the scenario's result or
    error, and every step call in order."""
    workspace = workspace or tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    scenario_file = tmp_path / "scenario.groovy"
    scenario_file.write_text(textwrap.dedent(scenario))
    record = tmp_path / "record.json"
    argv = [tool("groovy"), str(HARNESS), str(LIBRARY), str(scenario_file), str(record),
            str(workspace)]
    if credentials is not None:
        (tmp_path / "credentials.json").write_text(json.dumps(credentials))
        argv.append(str(tmp_path / "credentials.json"))
    ran = run(argv, cwd=tmp_path, env=clean_env({**JAVA_ENV, **(env or {})}),
              timeout=timeout, log=tmp_path / "harness.log")
    assert ran.returncode == 0 and record.is_file(), ran.output
    data: dict[str, Any] = json.loads(record.read_text())
    data["output"] = ran.output
    return data


def steps(record: dict[str, Any], *names: str) -> list[dict[str, Any]]:
    return [call for call in record["calls"] if not names or call["step"] in names]


@pytest.fixture
def fake_bgci(tmp_path: Path) -> tuple[Path, Path]:
    """A fake bgci executable and the file it logs its calls to."""
    return write_fake_bgci(tmp_path / "bin" / "bgci"), tmp_path / "fake-bgci.log"


def installed_bgci() -> Path:
    """The bgci console script installed with this interpreter (tox installs the checkout)."""
    script = Path(sys.executable).with_name("bgci")
    if not script.is_file():
        pytest.fail(f"no bgci next to {sys.executable}: pip install -e . (or run through tox)",
                    pytrace=False)
    return script


def test_step_runs_a_blue_green_cycle_with_the_real_bgci(
        tmp_path: Path, deployable_repo: Callable[..., AppRepo]) -> None:
    repo = deployable_repo("jk")
    scenario = f"""
        Map common = [dir: 'app', bgci: '{installed_bgci()}', lock: 'bgci-itest']
        Map v1 = bgci.run(common + [stage: 'deploy', args: '--tag v1'])
        new File('{repo.app_dir}/VERSION').text = '2.0.0\\n'
        Map built = bgci.build(common + [args: ['--tag', 'v2']])
        Map green = bgci.deployGreen(common)
        Map verified = bgci.verify(common)
        Map switched = bgci.switchTraffic(common + [set: ['switch.confirm_requests': '6']])
        Map back = bgci.rollback(common)
        return [v1: v1, built: built, green: green, verified: verified, switched: switched,
                back: back]
    """
    record = harness(tmp_path, scenario, workspace=repo.root, timeout=420)
    assert "error" not in record, record.get("error", "") + record["output"][-4000:]
    result = record["result"]
    assert result["v1"]["BGCI_LIVE_COLOR"] == "blue"
    assert result["built"]["BGCI_IMAGE"] == f"{repo.app}:v2"
    assert result["green"]["BGCI_IDLE_COLOR"] == "green"
    assert result["green"]["BGCI_PREVIEW_URL"] == repo.preview_url
    assert result["switched"]["BGCI_LIVE_COLOR"] == "green"
    assert result["back"]["BGCI_LIVE_COLOR"] == "blue"
    # every stage published its JUnit file, found where bgci wrote it
    junit = steps(record, "junit")
    assert [c["testResults"] for c in junit] == [
        "bgci-reports/build.xml, bgci-reports/deploy-green.xml, bgci-reports/verify.xml, "
        "bgci-reports/switch.xml",
        "bgci-reports/build.xml", "bgci-reports/deploy-green.xml", "bgci-reports/verify.xml",
        "bgci-reports/switch.xml", "bgci-reports/rollback.xml"]
    assert all(c["found"] == [p.strip() for p in c["testResults"].split(",")] for c in junit)
    # the deploy stages ran under the lock, the build did not
    locks = [c["resource"] for c in steps(record, "lock")]
    assert locks == ["bgci-itest"] * 5
    reports = repo.app_dir / "bgci-reports"
    assert_junit(reports, ("build", "deploy-green", "verify", "switch", "rollback"))
    properties = {p.get("name"): p.get("value")
                  for p in junit_suite(reports / "rollback.xml").iter("property")}
    assert properties["ci_job_url"] == "http://jenkins.invalid/job/bgci-itest/7/"
    answer = requests.get(f"{repo.live_url}/version", timeout=10)
    assert answer.headers["X-Bgci-Color"] == "blue" and answer.json()["version"] == "1.0.0"


def test_step_builds_the_command_line_without_a_shell_string(
        tmp_path: Path, fake_bgci: tuple[Path, Path]) -> None:
    fake, log = fake_bgci
    scenario = f"""
        Map common = [bgci: '{fake}', env: [FAKE_BGCI_LOG: '{log}']]
        List out = []
        out << bgci.build(common + [args: '--tag v2', config: 'deploy/bgci.toml', reports: 'out',
                                    set: ['health.interval': '0.2', 'hooks.pre_switch.command':
                                          'python manage.py migrate; echo $(id)']])
        out << bgci.deployGreen(common + [args: ['--image', 'shop:v2'], lock: true])
        out << bgci.verify(common + [dir: 'app'])
        out << bgci.switchTraffic(common + [args: '--dry-run', lock: 'prod-deploys', credentials: [
                                                string(credentialsId: 'hook', variable: 'BGCI_NOTIFY_URL')]])
        out << bgci.rollback(common + [env: [FAKE_BGCI_LOG: '{log}', EXTRA: 'a b $(c)']])
        out << bgci.run(common + [stage: 'status', junit: false, archive: false])
        out << bgci(common + [stage: 'retire', args: '--force'])
        out << bgci.deploy(common)
        return out
    """
    record = harness(tmp_path, scenario, credentials={"hook": "https://hooks.invalid/s3cr3t"})

    assert "error" not in record, record
    argvs = [call["argv"] for call in fake_calls(log)]
    assert argvs == [
        ["--reports", "out", "--config", "deploy/bgci.toml", "--set", "health.interval=0.2",
         "--set", "hooks.pre_switch.command=python manage.py migrate; echo $(id)", "build",
         "--tag", "v2"],
        ["--reports", "bgci-reports", "deploy-green", "--image", "shop:v2"],
        ["--reports", "bgci-reports", "verify"],
        ["--reports", "bgci-reports", "switch", "--dry-run"],
        ["--reports", "bgci-reports", "rollback"],
        ["--reports", "bgci-reports", "status"],
        ["--reports", "bgci-reports", "retire", "--force"],
        ["--reports", "bgci-reports", "deploy"],
    ]
    calls = fake_calls(log)
    assert calls[2]["cwd"] == str(tmp_path / "workspace" / "app")
    assert calls[3]["notify"] == "https://hooks.invalid/s3cr3t"
    assert calls[4]["extra"] == "a b $(c)"
    assert [c["notify"] for i, c in enumerate(calls) if i != 3] == [None] * 7
    # one fixed script: no value was ever put into the shell string
    scripts = {call["script"] for call in steps(record, "sh")}
    assert len(scripts) == 1
    script = scripts.pop()
    for value in ("v2", "deploy/bgci.toml", "migrate", "s3cr3t", "shop", "--dry-run", "status"):
        assert value not in script
    assert script.startswith("#!/bin/sh\n")  # no `sh -x` echo of the values either
    # JUnit published per stage, after the stage; none when junit: false
    order = [(c["step"], c.get("testResults") or c.get("label") or c.get("resource"))
             for c in steps(record, "sh", "junit", "lock", "unlock")]
    assert order == [
        ("sh", "bgci build"), ("junit", "out/build.xml"),
        ("lock", "bgci"), ("sh", "bgci deploy-green"), ("junit", "bgci-reports/deploy-green.xml"),
        ("unlock", "bgci"),
        ("sh", "bgci verify"), ("junit", "bgci-reports/verify.xml"),
        ("lock", "prod-deploys"), ("sh", "bgci switch"), ("junit", "bgci-reports/switch.xml"),
        ("unlock", "prod-deploys"),
        ("sh", "bgci rollback"), ("junit", "bgci-reports/rollback.xml"),
        ("sh", "bgci status"),
        ("sh", "bgci retire"), ("junit", "bgci-reports/retire.xml"),
        ("sh", "bgci deploy"),
        ("junit", "bgci-reports/build.xml, bgci-reports/deploy-green.xml, "
                  "bgci-reports/verify.xml, bgci-reports/switch.xml"),
    ]
    assert all(call["found"] for call in steps(record, "junit"))
    assert steps(record, "withCredentials")[0]["ids"] == ["hook"]
    assert record["result"][0] == {"BGCI_LIVE_COLOR": "green", "BGCI_IMAGE": "shop:v2"}
    assert "s3cr3t" not in record["output"]


def test_step_installs_bgci_from_source_once(tmp_path: Path) -> None:
    package = make_fake_bgci_wheel(tmp_path / "dist")
    log, venv = tmp_path / "fake-bgci.log", tmp_path / "venv"
    scenario = f"""
        Map common = [source: '{package}', venv: '{venv}', env: [FAKE_BGCI_LOG: '{log}']]
        return [bgci.build(common), bgci.verify(common)]
    """
    record = harness(tmp_path, scenario)

    assert "error" not in record, record
    assert record["output"].count(f"bgci: installed into {venv}") == 1, record["output"]
    assert record["output"].count(f"bgci: reusing {venv}") == 1, record["output"]
    assert [call["argv"][-1] for call in fake_calls(log)] == ["build", "verify"]
    assert (venv / ".bgci-requirement").read_text() == str(package)


def test_a_failing_stage_fails_the_step_after_publishing_its_report(
        tmp_path: Path, fake_bgci: tuple[Path, Path]) -> None:
    fake, log = fake_bgci
    scenario = f"""
        bgci.verify(bgci: '{fake}', env: [FAKE_BGCI_LOG: '{log}', FAKE_BGCI_EXIT: '1'])
        echo 'not reached'
    """
    record = harness(tmp_path, scenario)

    assert record["error"] == ("bgci verify failed with exit code 1 (a check failed (health, "
                               "smoke, switch confirmation, bake, a hook)): the JUnit report "
                               "bgci-reports/verify.xml says why")
    order = [c["step"] for c in steps(record) if c["step"] in ("sh", "junit", "archiveArtifacts",
                                                              "error", "echo")]
    assert order == ["sh", "junit", "archiveArtifacts", "error"]
    assert steps(record, "junit")[0]["found"] == ["bgci-reports/verify.xml"]
    assert steps(record, "sh")[0]["exitCode"] == 1


BAD_CALLS = {
    "unknown stage": ("bgci.run(stage: 'nuke')",
                      "bgci: unknown stage 'nuke'; expected one of: build, deploy-green, verify, "
                      "switch, rollback, status, retire, down, up, deploy"),
    "stage injection": ("bgci.run(stage: 'status; touch @PWNED@/stage')",
                        "bgci: unknown stage 'status; touch"),
    "no stage": ("bgci.run([:])", "bgci: unknown stage ''"),
    "args semicolon": ("bgci.build(args: '--tag v1; touch @PWNED@/semicolon')",
                       "bgci: args: 'v1;' is not allowed"),
    "args substitution": ("bgci.build(args: ['--tag', '$(touch @PWNED@/substitution)'])",
                          "bgci: args: '$(touch @PWNED@/substitution)' is not allowed"),
    "args backticks": ("bgci.build(args: '`touch @PWNED@/backticks`')",
                       "bgci: args: '`touch' is not allowed"),
    "set key": ("bgci.build(set: ['x;touch @PWNED@/key': '1'])", "bgci: set: 'x;touch"),
    "set newline": ("bgci.build(set: ['health.path': '/ok\\n$(touch @PWNED@/newline)'])",
                    "bgci: set health.path: a value must be on one line"),
    "env name": ("bgci.build(env: ['A;touch @PWNED@/env': '1'])", "bgci: env: 'A;touch"),
    "unknown option": ("bgci.build(tag: 'v2')", "bgci: unknown option(s) tag; expected: stage"),
    "source option": ("bgci.build(source: '--index-url=http://127.0.0.1:9/')",
                      "bgci: source: '--index-url"),
    "python": ("bgci.build(python: 'python3; touch @PWNED@/python')",
               "bgci: python: 'python3; touch"),
}


def test_bad_input_is_refused_before_anything_runs(
        tmp_path: Path, fake_bgci: tuple[Path, Path]) -> None:
    fake, log = fake_bgci
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    # every call in one harness run (a JVM start each would be slow); the fake bgci is on PATH
    lines = ["Map refused = [:]"]
    for case, (call, _) in BAD_CALLS.items():
        lines.append(f"try {{ {call}; refused[{case!r}] = 'ran' }} "
                     f"catch (Exception e) {{ refused[{case!r}] = e.message }}")
    lines.append("return refused")
    scenario = "\n".join(lines).replace("@PWNED@", str(pwned))
    record = harness(tmp_path, scenario, env={"PATH": f"{fake.parent}:{os.environ['PATH']}",
                                              "FAKE_BGCI_LOG": str(log)})

    assert "error" not in record, record
    for case, (_, message) in BAD_CALLS.items():
        assert record["result"][case].startswith(message.replace("@PWNED@", str(pwned))), \
            (case, record["result"][case])
    assert {c["step"] for c in steps(record)} == {"error"}, steps(record)
    assert not log.exists(), "bgci ran"
    assert sorted(pwned.iterdir()) == [], "an injected command ran"


def test_help_and_jenkinsfile() -> None:
    """bgci.txt documents every entry point; the project's Jenkinsfile compiles and uses them."""
    help_text = (LIBRARY / "vars" / "bgci.txt").read_text()
    for name in ("bgci.build", "bgci.deployGreen", "bgci.verify", "bgci.switchTraffic",
                 "bgci.rollback", "bgci.run", "libraryPath: 'ci-templates/jenkins/'"):
        assert name in help_text
    jenkinsfile = (REPO / "Jenkinsfile").read_text()
    for name in ("bash scripts/run-tests.sh", "bgci.build(", "bgci.deployGreen(", "bgci.verify(",
                 "bgci.switchTraffic(", "bgci.rollback(", "input "):
        assert name in jenkinsfile, name
    check = (f"new GroovyShell().parse(new File('{REPO / 'Jenkinsfile'}'));"
             f"new GroovyShell().parse(new File('{LIBRARY / 'vars' / 'bgci.groovy'}'))")
    ran = run([tool("groovy"), "-e", check], cwd=REPO,
              env=clean_env({**JAVA_ENV}), timeout=120)
    assert ran.returncode == 0, ran.output
