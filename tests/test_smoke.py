"""The smoke runner: a real pytest subprocess whose results become checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.errors import ConfigError
from bgci.smoke import run_smoke
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
