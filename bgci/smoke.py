"""Runs the user's smoke suite against a URL and turns its JUnit results into checks.

Two forms. ``verify.smoke = "smoke"``: pytest runs that path with bgci's own interpreter (the
suite's imports must be installed beside bgci). ``verify.smoke_command = "tox -e smoke"``: the
project's own command, in the project's own environment, on the runner; it receives
``BGCI_TARGET_URL`` and ``BGCI_SMOKE_JUNIT`` (the path to write its JUnit XML to), and bgci merges
the cases it finds there. Either way each test case is one check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bgci.commands import on_runner
from bgci.errors import ConfigError
from bgci.model import Check, Outcome
from bgci.settings import VerifyConfig
from bgci.timings import waits_on

TIMEOUT = 900.0


def suite_name(verify: VerifyConfig) -> str:
    """How the log names the configured suite: its path, or its command."""
    return f"`{verify.smoke_command}`" if verify.smoke_command else verify.smoke


def run_suite(verify: VerifyConfig, root: Path, target_url: str,
              *, timeout: float = TIMEOUT) -> tuple[list[Check], str]:
    """The configured smoke suite (``verify.smoke_command`` or ``verify.smoke``) against
    ``target_url``: one check per test case, plus the output."""
    if verify.smoke_command:
        return run_smoke_command(verify.smoke_command, root, target_url, timeout=timeout)
    return run_smoke(root / verify.smoke, target_url, timeout=timeout)


@waits_on("app")
def run_smoke_command(command: str, cwd: Path, target_url: str,
                      *, timeout: float = TIMEOUT) -> tuple[list[Check], str]:
    """``/bin/sh -c command`` in ``cwd`` with BGCI_TARGET_URL and BGCI_SMOKE_JUNIT set: the test
    cases it wrote to BGCI_SMOKE_JUNIT as checks, plus one failed check when it exited non-zero
    without a failing case to show for it (or wrote no JUnit at all)."""
    with tempfile.TemporaryDirectory(prefix="bgci-smoke-") as tmp:
        junit = Path(tmp) / "smoke.xml"
        env = {"BGCI_TARGET_URL": target_url, "BGCI_SMOKE_JUNIT": str(junit)}
        started = time.monotonic()
        code, output = on_runner(command, env, timeout, str(cwd))
        seconds = time.monotonic() - started
        checks = _readable_junit(junit)
        failing = any(not c.ok for c in checks)
        if code == 124 and output.endswith(f"(timed out after {timeout:.0f}s)"):
            checks.append(Check("smoke", "failed", seconds,
                                f"smoke command timed out after {timeout:.0f}s", output[-4000:]))
        elif code != 0 and not failing:
            found = f"{len(checks)} case(s) in its JUnit all passed" if checks else \
                "it wrote no JUnit to $BGCI_SMOKE_JUNIT"
            checks.append(Check("smoke", "failed", seconds,
                                f"smoke command exited {code}; {found}", output[-4000:]))
        elif not checks:
            checks.append(Check("smoke", "passed", seconds,
                                "smoke command exited 0 (it wrote no JUnit to $BGCI_SMOKE_JUNIT: "
                                "one case)", output[-4000:]))
        return checks, output


def _readable_junit(path: Path) -> list[Check]:
    """The cases of a JUnit file the user's command wrote; none when it wrote none, and one
    error check when what it wrote is not JUnit XML."""
    if not path.exists():
        return []
    try:
        return parse_junit(path)
    except ET.ParseError as exc:
        return [Check("smoke", "error", 0.0,
                      f"the smoke command's $BGCI_SMOKE_JUNIT is not XML: {exc}")]


@waits_on("app")
def run_smoke(path: Path, target_url: str, *, timeout: float = TIMEOUT) -> tuple[list[Check], str]:
    """Run ``pytest path`` with BGCI_TARGET_URL set; one check per test case, plus the output."""
    if not path.exists():
        raise ConfigError(f"verify.smoke: {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="bgci-smoke-") as tmp:
        junit = Path(tmp) / "smoke.xml"
        env = {**os.environ, "BGCI_TARGET_URL": target_url}
        argv = [sys.executable, "-m", "pytest", str(path), f"--junitxml={junit}", "-q",
                "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
        started = time.monotonic()
        try:
            # errors="replace": a test may print anything (invalid UTF-8 too); that is no crash
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, errors="replace",
                                  timeout=timeout, cwd=path.parent if path.is_file() else path,
                                  check=False)
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes)
                   else (exc.stdout or ""))
            return [Check("smoke", "failed", timeout, f"smoke suite timed out after {timeout:.0f}s",
                          out)], out
        checks = parse_junit(junit) if junit.exists() else []
        if not checks or (proc.returncode not in (0, 1) and proc.returncode != 5):
            checks.append(Check("smoke", "error" if proc.returncode not in (0, 5) else "failed",
                                time.monotonic() - started,
                                f"pytest exited {proc.returncode}"
                                + (" (no tests collected)" if proc.returncode == 5 else ""),
                                output[-4000:]))
        return checks, output


def parse_junit(path: Path) -> list[Check]:
    """Test cases of a pytest JUnit file as checks named ``smoke::<class>::<test>``."""
    checks: list[Check] = []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = f"smoke::{case.get('classname', '')}::{case.get('name', '')}"
        outcome: Outcome = "passed"
        message = ""
        detail = ""
        for tag, kind in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            node = case.find(tag)
            if node is not None:
                outcome = kind  # type: ignore[assignment]
                message = node.get("message", "")
                detail = node.text or ""
                break
        out = "\n".join(filter(None, [detail, _text(case, "system-out"), _text(case, "system-err")]))
        checks.append(Check(name, outcome, float(case.get("time") or 0), message, out))
    return checks


def _text(case: ET.Element, tag: str) -> str:
    node = case.find(tag)
    return node.text or "" if node is not None else ""
