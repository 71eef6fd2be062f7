"""One list of stages (``bgci.stages``): the CLI, the configuration and the three CI wrappers agree
with it, so a stage added to bgci is added everywhere or this test says where it is missing."""

from __future__ import annotations

import re
from pathlib import Path

import click

from bgci.cli import cli
from bgci.settings import FailureHookConfig
from bgci.stages import FAILURE_STAGES, STAGES, TOOLS, WRAPPER_STAGES

REPO = Path(__file__).resolve().parents[1]


def _cli_commands() -> set[str]:
    ctx = click.Context(cli)
    return set(cli.list_commands(ctx))


def test_every_stage_is_a_command_and_every_command_a_stage() -> None:
    assert _cli_commands() - set(TOOLS) == set(STAGES)
    assert set(TOOLS) <= _cli_commands() and not set(TOOLS) & set(STAGES)


def test_the_derived_lists_are_stages() -> None:
    assert set(FAILURE_STAGES) <= set(STAGES) and set(WRAPPER_STAGES) <= set(STAGES)
    assert FailureHookConfig().stage_list == FAILURE_STAGES


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z-]*", text)


def test_the_github_action_accepts_exactly_the_wrapper_stages() -> None:
    text = (REPO / "action.yml").read_text(encoding="utf-8")
    case = re.search(r'case "\$BGCI_ACTION_STAGE" in\s*\n\s*([a-z| -]+)\) ;;', text)
    assert case, "the stage check of action.yml was not found"
    assert _words(case.group(1)) == list(WRAPPER_STAGES)
    described = re.search(r'The stage to run: ([a-z| -]+)\.', text)
    assert described and _words(described.group(1)) == list(WRAPPER_STAGES)


def test_the_gitlab_template_accepts_exactly_the_wrapper_stages() -> None:
    text = (REPO / "ci-templates" / "gitlab" / "bgci.yml").read_text(encoding="utf-8")
    case = re.search(r'case "\$BGCI_STAGE" in\s*\n\s*([a-z| -]+)\) ;;', text)
    assert case, "the stage check of the GitLab template was not found"
    assert _words(case.group(1)) == list(WRAPPER_STAGES)
    jobs = set(re.findall(r"^\.bgci-([a-z-]+):$", text, re.MULTILINE))
    assert jobs - {"pipeline"} == set(WRAPPER_STAGES), "one hidden job per stage"


def test_the_jenkins_step_accepts_exactly_the_wrapper_stages() -> None:
    text = (REPO / "ci-templates" / "jenkins" / "vars" / "bgci.groovy").read_text(encoding="utf-8")
    listed = re.search(r"List<String> STAGES = \[([^\]]*)\]", text)
    assert listed, "STAGES of the Jenkins step was not found"
    assert re.findall(r"'([a-z-]+)'", listed.group(1)) == list(WRAPPER_STAGES)
    methods = set(re.findall(r"run\(opts \+ \[stage: '([a-z-]+)'\]\)", text))
    assert methods == set(WRAPPER_STAGES), "one step method per stage"
