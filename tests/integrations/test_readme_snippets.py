"""The copy-paste pipelines of docs/ci/ (linked from the README's "Use it from CI"), checked as a
user would drop them into a fresh project: the workflow passes actionlint and zizmor, the GitLab pipeline
resolves with the template and gates the switch, the Jenkinsfile compiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integrations.support import (
    JAVA_ENV,
    REPO,
    clean_env,
    git,
    make_repo,
    run,
    tool,
)

pytestmark = pytest.mark.e2e

PIN = "0123456789abcdef0123456789abcdef01234567"


def snippet(language: str, first_line: str) -> str:
    """The code block of ``language`` in the per-CI pages (docs/ci/, linked from the README's "Use
    it from CI") that starts ``first_line``."""
    section = "".join(page.read_text() for page in sorted((REPO / "docs" / "ci").glob("*.md")))
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    found = [block for block in blocks if block.startswith(first_line)]
    assert len(found) == 1, f"no {language} block starting {first_line!r} in docs/ci/"
    return found[0].replace("<you>", "example").replace("<commit>", PIN)


@pytest.mark.parametrize("name", ["deploy.yml", "blue-green-deploy.yml"])
def test_readme_github_workflow_passes_the_linters(tmp_path: Path, name: str) -> None:
    """The pipeline of steps, and the one that calls the reusable workflow."""
    workflow = tmp_path / ".github" / "workflows" / name
    workflow.parent.mkdir(parents=True)
    workflow.write_text(snippet("yaml", f"# .github/workflows/{name}"))
    lint = run([tool("actionlint"), str(workflow)], cwd=tmp_path, env=clean_env(), timeout=120)
    assert lint.returncode == 0 and not lint.output.strip(), lint.output
    audit = run([tool("zizmor"), "--offline", "--no-progress", str(workflow)], cwd=tmp_path,
                env=clean_env(), timeout=120)
    assert audit.returncode == 0 and "No findings" in audit.output, audit.output


def test_readme_gitlab_pipeline_resolves_with_the_template(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "readme", with_app=False)
    pipeline = snippet("yaml", "# .gitlab-ci.yml")
    remote = re.search(r"- remote: (\S+)", pipeline)
    assert remote and remote.group(1).endswith("/ci-templates/gitlab/bgci.yml")
    # the same file, included from the checkout instead of over the network
    repo.write(".gitlab-ci.yml", pipeline.replace(remote.group(0),
                                                  "- local: ci-templates/gitlab/bgci.yml"))
    git(repo.root, "remote", "add", "origin", "git@gitlab.invalid:example/shop.git")
    repo.commit("pipeline")
    ran = run([tool("gitlab-ci-local"), "--home", str(tmp_path / "home"), "--list"],
              cwd=repo.root, env=clean_env(), timeout=120)
    assert ran.returncode == 0, ran.output
    lines = ran.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("name "))
    when = {line.split()[0]: line.split()[2] for line in lines[header + 1:] if line.strip()}
    assert when == {"tests": "on_success", "bgci-build": "on_success",
                    "bgci-deploy-green": "on_success", "bgci-verify": "on_success",
                    "bgci-switch": "manual", "bgci-rollback": "manual"}


def test_readme_jenkinsfile_compiles_and_uses_the_library(tmp_path: Path) -> None:
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(snippet("groovy", "// Jenkinsfile"))
    text = jenkinsfile.read_text()
    assert "libraryPath: 'ci-templates/jenkins/'" in text
    for step in ("bgci.build(", "bgci.deployGreen(", "bgci.verify(", "bgci.switchTraffic(",
                 "bgci.rollback(", "input {", "agent none", "options { lock('production') }"):
        assert step in text, step
    # the lock is taken around the deploying stages, and the approval is asked before the switch
    deploy = text[text.index("stage('Deploy')"):text.index("stage('Rollback')")]
    assert deploy.index("lock(") < deploy.index("bgci.deployGreen(") < deploy.index("input {") \
        < deploy.index("bgci.switchTraffic(")
    ran = run([tool("groovy"), "-e", f"new GroovyShell().parse(new File('{jenkinsfile}'))"],
              cwd=tmp_path, env=clean_env({**JAVA_ENV}), timeout=120)
    assert ran.returncode == 0, ran.output
