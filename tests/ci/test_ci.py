"""The CI adapters: detection, job identity, log folds and GitHub step outputs/summary.

Every test passes its own environment dict: nothing here reads or changes os.environ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from bgci.ci import ADAPTERS, detect_ci
from bgci.ci.github import GitHubActions
from bgci.ci.gitlab import GitLabCI
from bgci.ci.jenkins import Jenkins
from bgci.ci.local import Local
from bgci.lock import default_holder
from bgci.model import Check, StageResult

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.example",
    "GITHUB_REPOSITORY": "owner/repo",
    "GITHUB_RUN_ID": "42",
    "GITHUB_JOB": "deploy",
}
GITLAB = {
    "GITLAB_CI": "true",
    "CI_JOB_URL": "https://gitlab.example/group/proj/-/jobs/123",
    "CI_PROJECT_PATH": "group/proj",
    "CI_JOB_ID": "123",
}
JENKINS = {
    "JENKINS_URL": "https://jenkins.example/",
    "BUILD_URL": "https://jenkins.example/job/shop/7/",
    "JOB_NAME": "shop",
    "BUILD_NUMBER": "7",
}


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        (GITHUB, "github"),
        (GITLAB, "gitlab"),
        (JENKINS, "jenkins"),
        ({"BUILD_URL": "https://j.example/job/x/1/", "JOB_NAME": "x"}, "jenkins"),
        ({"BUILD_URL": "https://j.example/job/x/1/"}, "local"),
        ({"GITHUB_ACTIONS": "false", "GITLAB_CI": "false"}, "local"),
        ({}, "local"),
        # act / a GitHub runner on a Jenkins agent: the innermost CI (GitHub) runs the step.
        ({**JENKINS, **GITHUB}, "github"),
    ],
)
def test_detect_ci(environ: dict[str, str], name: str) -> None:
    assert detect_ci(environ).name == name
    assert name in ADAPTERS


def test_job_urls() -> None:
    assert GitHubActions(GITHUB).job_url() == "https://github.example/owner/repo/actions/runs/42"
    github_com = {k: v for k, v in GITHUB.items() if k != "GITHUB_SERVER_URL"}
    assert GitHubActions(github_com).job_url() == "https://github.com/owner/repo/actions/runs/42"
    assert GitLabCI(GITLAB).job_url() == "https://gitlab.example/group/proj/-/jobs/123"
    assert Jenkins(JENKINS).job_url() == "https://jenkins.example/job/shop/7/"
    assert Local({}).job_url() == ""
    assert GitHubActions({"GITHUB_ACTIONS": "true"}).job_url() == ""


def test_holders_name_the_job_or_fall_back_to_user_at_host() -> None:
    assert GitHubActions(GITHUB).holder() == "github owner/repo run 42 job deploy"
    assert GitLabCI(GITLAB).holder() == "gitlab group/proj job 123"
    assert Jenkins(JENKINS).holder() == "jenkins shop #7"
    fallback = default_holder()
    assert Local({}).holder() == fallback
    assert GitHubActions({"GITHUB_ACTIONS": "true"}).holder() == fallback
    assert GitLabCI({"GITLAB_CI": "true"}).holder() == fallback
    assert Jenkins({"JENKINS_URL": "https://j.example/"}).holder() == fallback


def test_adapters_snapshot_the_environment() -> None:
    environ = dict(GITLAB)
    ci = detect_ci(environ)
    environ["CI_JOB_URL"] = "changed"
    assert ci.job_url() == GITLAB["CI_JOB_URL"]


def test_github_fold(capsys: pytest.CaptureFixture[str]) -> None:
    ci = GitHubActions(GITHUB)
    with ci.fold("health \x1b[1mgreen\x1b[0m\n100%"), ci.fold("inner"):
        print("probe ok", file=sys.stderr)
    err = capsys.readouterr().err.splitlines()
    # A title cannot inject a second command; GitHub groups do not nest.
    assert err == ["::group::health green 100%25", "== inner", "probe ok", "::endgroup::"]


def test_github_fold_ends_the_group_on_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), GitHubActions(GITHUB).fold("switch"):
        raise RuntimeError("router gone")
    assert capsys.readouterr().err.splitlines() == ["::group::switch", "::endgroup::"]


def test_gitlab_fold_sections(capsys: pytest.CaptureFixture[str]) -> None:
    ci = GitLabCI(GITLAB)
    with pytest.raises(RuntimeError), ci.fold("Deploy green: shop:abc (x)"):
        raise RuntimeError
    with ci.fold("Deploy green: shop:abc (x)"):
        pass
    err = capsys.readouterr().err
    start = re.compile(
        r"\x1b\[0Ksection_start:(\d+):([a-z0-9_.-]+)\[collapsed=true\]\r\x1b\[0K(.*)\n"
        r"\x1b\[0Ksection_end:(\d+):([a-z0-9_.-]+)\r\x1b\[0K\n"
    )
    sections = start.findall(err)
    assert len(sections) == 2 and start.sub("", err) == ""
    for started, name, title, ended, end_name in sections:
        assert name == end_name and name.startswith("bgci_deploy_green")
        assert title == "Deploy green: shop:abc (x)"
        assert int(started) <= int(ended)
    assert sections[0][1] != sections[1][1], "section names must be unique in the job log"


@pytest.mark.parametrize("ci", [Jenkins, Local])
def test_plain_fold(ci: type[Local], capsys: pytest.CaptureFixture[str]) -> None:
    with ci(JENKINS).fold("verify\ngreen"):
        pass
    assert capsys.readouterr().err == "== verify green\n"


def parse_github_output(text: str) -> dict[str, str]:
    """The runner's parser for $GITHUB_OUTPUT (actions/runner, SetOutputFileCommand)."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            outputs[line[:equals]] = line[equals + 1 :]
            continue
        assert heredoc > 0, f"invalid line {line!r}"
        key, delimiter = line[:heredoc], line[heredoc + 2 :]
        assert delimiter, "empty delimiter"
        body: list[str] = []
        for body_line in lines:
            if body_line == delimiter:
                break
            body.append(body_line)
        else:
            raise AssertionError(f"no closing delimiter {delimiter!r}")
        outputs[key] = "\n".join(body)
    return outputs


def stage_result() -> StageResult:
    stage = StageResult(
        stage="verify",
        app="shop",
        status="failed",
        exit_code=1,
        message="smoke test failed | see report",
        live_colour="blue",
        idle_colour="green",
    )
    stage.add(Check("health green", "passed", 1.234))
    stage.add(Check("smoke | test_<home>", "failed", 0.5, "assert 500 == 200\nmore"))
    stage.add(Check("latency", "skipped", 0.0, "p95_ms = 0"))
    return stage


def test_github_publish_outputs_survive_tricky_values(tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.write_text("earlier=kept\n", encoding="utf-8")
    environ = {**GITHUB, "GITHUB_OUTPUT": str(output)}
    tricky = "line1\nEOF\nghadelimiter_00000000-0000-0000-0000-000000000000\nx<<y\nkey=value\n%0A ✓"
    values = {
        "BGCI_LIVE_COLOR": "blue",
        "BGCI_IDLE_COLOR": "green",
        "BGCI_IMAGE": tricky,
        "BGCI_DIGEST": "sha256:" + "f" * 64,
        "BGCI_PREVIEW_URL": "http://127.0.0.1:8081/?a=b&c=d",
    }
    report = tmp_path / "reports" / "verify.xml"
    GitHubActions(environ).publish(stage_result(), values, report)
    GitHubActions(environ).publish(stage_result(), {**values, "BGCI_IMAGE": "second"}, report)

    text = output.read_text(encoding="utf-8")
    assert text.startswith("earlier=kept\n")
    delimiters = re.findall(r"^[a-z-]+<<(ghadelimiter_[0-9a-f-]{36})$", text, re.MULTILINE)
    assert len(delimiters) == 14 and len(set(delimiters)) == 14, "one random delimiter per value"
    first = parse_github_output(text[: text.index("live-color<<", text.index("report<<"))])
    assert first == {
        "earlier": "kept",
        "live-color": "blue",
        "idle-color": "green",
        "image": tricky,
        "digest": "sha256:" + "f" * 64,
        "live-url": "",
        "preview-url": "http://127.0.0.1:8081/?a=b&c=d",
        "report": str(report),
    }
    assert parse_github_output(text)["image"] == "second"


def test_github_step_summary_is_a_markdown_table(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    environ = {**GITHUB, "GITHUB_STEP_SUMMARY": str(summary)}
    values = {"BGCI_IMAGE": "shop:abc123", "BGCI_DIGEST": "sha256:abc"}
    GitHubActions(environ).publish(stage_result(), values, tmp_path / "verify.xml")

    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")
    lines = text.splitlines()
    assert any("bgci verify: failed (exit 1)" in line for line in lines)
    assert "smoke test failed \\| see report" in text
    for row in [
        "| live colour | blue |",
        "| idle colour | green |",
        "| image | shop:abc123 |",
        "| digest | sha256:abc |",
        "| check | outcome | seconds | message |",
        "| health green | ✅ passed | 1.23 |  |",
        "| smoke \\| test_&lt;home&gt; | ❌ failed | 0.50 | assert 500 == 200 more |",
        "| latency | ⏭️ skipped | 0.00 | p95_ms = 0 |",
    ]:
        assert row in lines, row
    # Each table row has the same number of unescaped cell separators as its header.
    check_rows = [line for line in lines if line.startswith("| ") and "seconds" not in line]
    for line in check_rows[-3:]:
        assert len(re.findall(r"(?<!\\)\|", line)) == 5, line


def test_github_publish_without_files_is_a_no_op(tmp_path: Path) -> None:
    GitHubActions(GITHUB).publish(stage_result(), {}, tmp_path / "verify.xml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("adapter", ["gitlab", "jenkins", "local"])
def test_other_cis_publish_nothing(adapter: str, tmp_path: Path) -> None:
    # Even a stray GITHUB_OUTPUT must not be written outside GitHub Actions.
    output = tmp_path / "output"
    environ = {**GITLAB, **JENKINS, "GITHUB_OUTPUT": str(output)}
    ci = ADAPTERS[adapter](environ)
    assert ci.name == adapter
    ci.publish(stage_result(), {"BGCI_IMAGE": "x"}, tmp_path / "verify.xml")
    assert not output.exists()
