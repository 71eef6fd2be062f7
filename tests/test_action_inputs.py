"""The GitHub Action's first step, "Check the bgci inputs", run as the runner runs it (bash, the
inputs in its environment): what a person reads for each bad input, and that nothing in an input
is ever executed. tests/integrations/test_github_action.py runs the whole action under act."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTHING_RAN = "bgci action: invalid inputs, nothing was run"
DEFAULTS = {"stage": "status", "args": "", "set": "", "version": "", "source": "",
            "python": "python3"}


def check_step() -> dict[str, Any]:
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    [step] = [s for s in action["runs"]["steps"] if s.get("name") == "Check the bgci inputs"]
    return step  # type: ignore[no-any-return]


def check(tmp_path: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    """The step with ``inputs`` (the rest as action.yml's defaults) in its environment."""
    step = check_step()
    assert step["shell"] == "bash"
    given = {**DEFAULTS, **inputs}
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"}
    for name, value in step["env"].items():  # BGCI_ACTION_STAGE: ${{ inputs.stage }}
        env[name] = given[value.removeprefix("${{ inputs.").removesuffix(" }}")]
    return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, check=False)


def test_good_inputs_pass_in_silence(tmp_path: Path) -> None:
    ran = check(tmp_path, stage="deploy-green", args="--image registry.example/app:1.2@sha256:ab",
                set="health.interval=0.2\n  router.kind=haproxy\n", version="1.2.3")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")


@pytest.mark.parametrize(("inputs", "message"), [
    ({"stage": "nuke"}, "input stage: unknown stage 'nuke'; expected one of: build, deploy-green, "
                        "verify, switch, rollback, status, retire, down, up, deploy, releases"),
    ({"stage": "status; touch @PWNED@/stage"}, "input stage: unknown stage 'status; touch "),
    ({"args": "--history 1; touch @PWNED@/semicolon"}, "input args: '1;' is not allowed: words of "
                                                        "letters, digits and _ . / : = , @ + % - "
                                                        "only, no shell syntax"),
    ({"args": "--history $(touch @PWNED@/substitution)"}, "input args: '$(touch' is not allowed"),
    ({"args": "`touch @PWNED@/backticks`"}, "input args: '`touch' is not allowed"),
    ({"set": "health.interval=0.2\n$(touch @PWNED@/set)"}, "input set: '$(touch "),
    ({"source": "--index-url=http://127.0.0.1:9/"}, "input source: '--index-url=http://127.0.0.1:9/'"
                                                     " is not a pip requirement"),
    ({"version": "1.0", "source": "./dist"}, "inputs version and source: give one of them, not both"),
    ({"version": "latest; id"}, "input version: 'latest; id' is not a version number"),
    ({"python": "python3 -c 'import os'"}, "input python: 'python3 -c 'import os'' is not an "
                                           "interpreter name"),
    ({"stage": "status\n::warning::forged"}, "input stage: unknown stage 'status?::warning::forged'"),
], ids=["stage", "stage-injection", "args-semicolon", "args-substitution", "args-backticks",
        "set-line", "source-option", "version-and-source", "version", "python", "stage-newline"])
def test_a_bad_input_is_named_and_nothing_in_it_runs(tmp_path: Path, inputs: dict[str, str],
                                                     message: str) -> None:
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    ran = check(tmp_path, **{name: value.replace("@PWNED@", str(pwned))
                             for name, value in inputs.items()})
    assert ran.returncode == 2, ran
    errors = ran.stdout.splitlines()  # workflow commands only, the input's own error first
    assert errors[0].startswith(f"::error title=bgci action::{message}"), ran.stdout
    assert all(line.startswith("::error title=bgci action::input") for line in errors), errors
    assert ran.stderr == f"{NOTHING_RAN}\n", ran.stderr
    assert sorted(pwned.iterdir()) == [], "an injected command ran"
