"""Runs the user's pytest smoke suite against a URL and turns its JUnit results into checks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bgci.errors import ConfigError
from bgci.model import Check, Outcome
from bgci.timings import waits_on

TIMEOUT = 900.0


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
