"""The smoke runner: a real pytest subprocess whose results become checks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bgci.errors import ConfigError
from bgci.settings import VerifyConfig
from bgci.smoke import run_smoke, run_smoke_command, run_suite
from tests.helpers.httpserver import Script, serve

SUITE = '''
import os, urllib.request

def test_home():
    with urllib.request.urlopen(os.environ["BGCI_TARGET_URL"] + "/") as r:
        assert r.status == 200

def test_body():
    with urllib.request.urlopen(os.environ["BGCI_TARGET_URL"] + "/") as r:
        assert r.read() == b"expected", "body was not 'expected'"
'''


def test_results_become_checks(tmp_path: Path) -> None:
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "test_site.py").write_text(SUITE)
    with serve(Script(body="expected")) as url:
        checks, output = run_smoke(tmp_path / "smoke", url)
    assert [c.outcome for c in checks] == ["passed", "passed"], output
    assert checks[0].name == "smoke::test_site::test_home"


def test_a_failing_test_is_a_failed_check_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "test_site.py").write_text(SUITE)
    with serve(Script(body="other")) as url:
        checks, _ = run_smoke(tmp_path / "test_site.py", url)
    by_name = {c.name.rsplit("::", 1)[1]: c for c in checks}
    assert by_name["test_home"].outcome == "passed"
    assert by_name["test_body"].outcome == "failed"
    assert "body was not 'expected'" in by_name["test_body"].message


def test_an_empty_suite_is_a_failure_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "smoke").mkdir()
    checks, _ = run_smoke(tmp_path / "smoke", "http://127.0.0.1:9")
    assert [c.outcome for c in checks] == ["failed"]
    assert "no tests collected" in checks[0].message


def test_missing_suite_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        run_smoke(tmp_path / "nope", "http://127.0.0.1:9")


# verify.smoke_command: the project's own command, in the project's own environment

HELPED_SUITE = '''
import os, urllib.request
import projecthelper  # importable only in the project's environment (its PYTHONPATH)

def test_home():
    with urllib.request.urlopen(os.environ["BGCI_TARGET_URL"] + "/") as r:
        assert r.read() == projecthelper.EXPECTED
'''


def _project(tmp_path: Path) -> Path:
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "test_site.py").write_text(HELPED_SUITE)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "projecthelper.py").write_text('EXPECTED = b"expected"\n')
    return tmp_path


PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"


def test_the_command_runs_in_the_projects_environment_and_its_junit_becomes_checks(
        tmp_path: Path) -> None:
    root = _project(tmp_path)
    command = f"PYTHONPATH=lib {PYTEST} smoke --junitxml=$BGCI_SMOKE_JUNIT"
    with serve(Script(body="expected")) as url:
        checks, output = run_smoke_command(command, root, url)
        plain, _ = run_smoke(root / "smoke", url)  # bgci's own interpreter: no projecthelper
    assert [(c.name, c.outcome) for c in checks] == [("smoke::smoke.test_site::test_home", "passed")], \
        output
    assert plain and not any(c.ok for c in plain)  # bgci's interpreter cannot import it


def test_a_failing_case_fails_with_its_own_name_and_message(tmp_path: Path) -> None:
    root = _project(tmp_path)
    command = f"PYTHONPATH=lib {PYTEST} smoke --junitxml=$BGCI_SMOKE_JUNIT"
    with serve(Script(body="other")) as url:
        checks, _ = run_smoke_command(command, root, url)
    assert [(c.name, c.outcome) for c in checks] == [("smoke::smoke.test_site::test_home", "failed")]
    assert "assert" in checks[0].message


def test_a_non_zero_exit_without_junit_is_one_failed_check(tmp_path: Path) -> None:
    checks, output = run_smoke_command("echo checking $BGCI_TARGET_URL; exit 3", tmp_path,
                                       "http://127.0.0.1:9")
    assert [c.outcome for c in checks] == ["failed"]
    assert checks[0].message == "smoke command exited 3; it wrote no JUnit to $BGCI_SMOKE_JUNIT"
    assert "checking http://127.0.0.1:9" in output


def test_a_non_zero_exit_with_only_passing_cases_still_fails(tmp_path: Path) -> None:
    root = _project(tmp_path)
    command = f"PYTHONPATH=lib {PYTEST} smoke --junitxml=$BGCI_SMOKE_JUNIT; exit 2"
    with serve(Script(body="expected")) as url:
        checks, _ = run_smoke_command(command, root, url)
    assert [c.outcome for c in checks] == ["passed", "failed"]
    assert checks[1].message == "smoke command exited 2; 1 case(s) in its JUnit all passed"


def test_exit_zero_without_junit_is_one_passing_case(tmp_path: Path) -> None:
    checks, _ = run_smoke_command("true", tmp_path, "http://127.0.0.1:9")
    assert [(c.name, c.outcome) for c in checks] == [("smoke", "passed")]


def test_junit_that_is_not_xml_is_an_error(tmp_path: Path) -> None:
    checks, _ = run_smoke_command("echo 'not xml' > $BGCI_SMOKE_JUNIT", tmp_path,
                                  "http://127.0.0.1:9")
    assert [c.outcome for c in checks] == ["error"]
    assert "is not XML" in checks[0].message


def test_a_command_past_its_timeout_is_killed_and_fails(tmp_path: Path) -> None:
    started = time.monotonic()
    checks, _ = run_smoke_command("sleep 30", tmp_path, "http://127.0.0.1:9", timeout=1.0)
    assert time.monotonic() - started < 15
    assert [c.message for c in checks] == ["smoke command timed out after 1s"]


def test_run_suite_picks_the_configured_form(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with serve(Script(body="expected")) as url:
        by_command, _ = run_suite(VerifyConfig(
            smoke_command=f"PYTHONPATH=lib {PYTEST} smoke --junitxml=$BGCI_SMOKE_JUNIT"), root, url)
        by_path, _ = run_suite(VerifyConfig(smoke="smoke"), root, url)
    assert [c.outcome for c in by_command] == ["passed"]
    assert by_path and not any(c.ok for c in by_path)  # ModuleNotFoundError: projecthelper
