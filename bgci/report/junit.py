"""The JUnit XML report of a stage: one ``<testsuite name="bgci.<stage>">``, a testcase per check.

Rendered with ``junit-xml``, then made to validate against the Jenkins xunit schema
(``junit-10.xsd``): junit-xml 1.9 writes a ``disabled`` attribute that schema forbids, so it is
dropped, and its ``time`` sums (``str(float)``, e.g. ``1e-05``) are rewritten as plain decimals.

Where a check's text goes: its ``message`` is the ``message`` attribute of ``<failure>``,
``<error>`` or ``<skipped>``; its ``output`` is the body of ``<failure>``/``<error>`` (what
GitLab and Jenkins show as the trace) and ``<system-out>`` for passed and skipped checks.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from bgci.model import Check, StageResult, iso
from bgci.report.text import clean_text, one_line

# Name of the testcase added when the checks alone would not tell the stage's outcome.
STAGE_CASE = "stage"

# Attributes junit-xml 1.9 writes that junit-10.xsd does not allow (Jenkins' junit plugin and
# GitLab ignore them, so dropping them loses nothing).
_NOT_IN_SCHEMA = ("disabled",)
_CASE_ORDER = ("name", "classname", "time")


def to_junit(result: StageResult, properties: Mapping[str, str],
             attachments: Sequence[Path] = ()) -> str:
    """The stage as a JUnit XML document (``<testsuites>`` around one suite), ending in a newline.

    Every string is stripped of ANSI escapes and of characters illegal in XML 1.0. A stage that
    did not pass always shows a failure or error, even when it has no failing check (or none).
    Each of ``attachments`` (absolute paths) is named in the suite's system-out as
    ``[[ATTACHMENT|path]]`` on a line of its own: Jenkins' junit-attachments plugin shows it.
    """
    suite_name = f"bgci.{one_line(result.stage)}"
    cases = [_case(suite_name, check) for check in result.checks]
    if not result.checks or (result.status != "passed" and all(c.ok for c in result.checks)):
        cases.append(_stage_case(suite_name, result))
    suite = TestSuite(
        name=suite_name,
        test_cases=cases,
        timestamp=iso(result.started),
        properties={one_line(k): one_line(v) for k, v in properties.items()},
        stdout="\n".join([clean_text(result.message)] + [f"[[ATTACHMENT|{path}]]"
                                                        for path in attachments]).strip() or None,
    )
    return _conform(to_xml_report_string([suite], prettyprint=False))


def _case(suite_name: str, check: Check) -> TestCase:
    name = one_line(check.name) or "(unnamed check)"
    case = TestCase(name=name, classname=suite_name, elapsed_sec=_seconds(check.seconds))
    message = clean_text(check.message)
    output = clean_text(check.output)
    # junit-xml drops a failure/error that has neither message nor output: always give one.
    if check.outcome == "failed":
        case.add_failure_info(message=message or f"{name} failed", output=output or None)
    elif check.outcome == "error":
        case.add_error_info(message=message or f"{name}: error", output=output or None)
    elif check.outcome == "skipped":
        case.add_skipped_info(message=message or None)
        case.stdout = output or None
    else:
        case.stdout = "\n".join(part for part in (message, output) if part) or None
    return case


def _stage_case(suite_name: str, result: StageResult) -> TestCase:
    """The stage's own outcome as a testcase, so a failing stage is never a green report."""
    case = TestCase(name=STAGE_CASE, classname=suite_name, elapsed_sec=_stage_seconds(result))
    message = clean_text(result.message) or f"{result.stage} {result.status}"
    detail = f"status {result.status}, exit code {result.exit_code}"
    if result.status == "error":
        case.add_error_info(message=message, output=detail, error_type="error")
    elif result.status != "passed":
        # "refused" (exit 4) is a verdict about the release, not a broken tool: a failure.
        case.add_failure_info(message=message, output=detail, failure_type=result.status)
    else:
        case.stdout = message
    return case


def _seconds(value: float) -> float:
    # A clock step or a missing measurement must not produce "-0.3" or "nan" in the report.
    return value if math.isfinite(value) and value > 0 else 0.0


def _stage_seconds(result: StageResult) -> float:
    return _seconds(result.finished - result.started) if result.finished else 0.0


def _time(value: float) -> str:
    return f"{_seconds(value):.3f}"


def _conform(document: str) -> str:
    """junit-xml's output, made valid for junit-10.xsd and pretty-printed."""
    root = ET.fromstring(document)
    for element in root.iter():
        for attribute in _NOT_IN_SCHEMA:
            element.attrib.pop(attribute, None)
    total = 0.0
    for suite in root.iter("testsuite"):
        suite_time = 0.0
        for case in suite.iter("testcase"):
            seconds = float(case.get("time", "0"))
            case.set("time", _time(seconds))
            suite_time += seconds
            # junit-xml omits time="0": restore one attribute order for every testcase.
            case.attrib = {k: case.attrib[k] for k in _CASE_ORDER if k in case.attrib} | {
                k: v for k, v in case.attrib.items() if k not in _CASE_ORDER
            }
        suite.set("time", _time(suite_time))
        total += suite_time
    root.set("time", _time(total))
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
