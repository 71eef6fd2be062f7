"""``verify.smoke_command``: the project's own smoke command runs on the runner, in the project's
environment, against the preview; the JUnit it writes to $BGCI_SMOKE_JUNIT becomes verify's cases,
and its failure makes the release unverified, even one that passed before (no switch without
--force)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Target, junit_cases, make_project, problem_of

pytestmark = pytest.mark.e2e

# Importable only through the command's PYTHONPATH: with `verify.smoke` (bgci's own pytest) the
# suite could not even be collected.
HELPER = "import os\nEXPECTED = os.environ.get('EXPECTED_VERSION', '1.0.0')\n"
SUITE = '''
import json, os, urllib.request
import projecthelper

def test_the_version_is_the_one_this_project_expects():
    with urllib.request.urlopen(os.environ["BGCI_TARGET_URL"] + "/version") as response:
        assert json.load(response)["version"] == projecthelper.EXPECTED
'''
COMMAND = (f"PYTHONPATH=lib {sys.executable} -m pytest -q -p no:cacheprovider "
           "project_smoke --junitxml=$BGCI_SMOKE_JUNIT")
CASE = "smoke::project_smoke.test_own::test_the_version_is_the_one_this_project_expects"


def test_the_projects_own_smoke_command_decides_verify(process_target: Target, tmp_path: Path,
                                                        junit_schema: Any) -> None:
    p = make_project(tmp_path / "project", process_target,
                     {"verify.smoke": "", "verify.smoke_command": COMMAND}, schema=junit_schema)
    (p.root / "lib").mkdir()
    (p.root / "lib" / "projecthelper.py").write_text(HELPER)
    (p.root / "project_smoke").mkdir()
    (p.root / "project_smoke" / "test_own.py").write_text(SUITE)

    p.run("deploy-green", "--image", process_target.release("v1"))
    run = p.run("verify")
    cases = junit_cases(p.junit("verify"))
    assert CASE in cases and problem_of(cases[CASE]) is None, sorted(cases)
    assert "1 passed" in run.err + run.out

    failed = p.run("verify", env={"EXPECTED_VERSION": "9.9.9"}, expect=1)
    case = junit_cases(p.junit("verify"))[CASE]
    assert problem_of(case) is not None
    assert f"failed: {CASE}" in failed.err, failed.err
    assert "it had passed before, and no longer counts" in failed.err, failed.err
    refused = p.run("switch", expect=4)
    assert "verify" in refused.err
    assert p.answer().status == 503, "nothing may be live: the release failed its smoke command"
    p.assert_junit_valid()
