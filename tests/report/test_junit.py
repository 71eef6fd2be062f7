"""The JUnit report validates against Jenkins' xunit schema and says what happened, whatever the
checks printed."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

import pytest
import xmlschema

from bgci.model import Check, Outcome, StageResult
from bgci.report import to_junit, write_reports
from bgci.report.junit import STAGE_CASE

REPO = Path(__file__).resolve().parents[2]
Status = Literal["passed", "failed", "error", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "error", "skipped")
PROPERTIES = {
    "app": "shop",
    "colour": "green",
    "image": "registry.example/shop:abc123",
    "digest": "sha256:" + "ab" * 32,
    "bgci_version": "0.1.0",
    "ci_job_url": "https://ci.example/job/7",
}
NASTY = (
    "\x1b[31mred\x1b[0m \x1b]0;window title\x07\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\ "
    "\x1b(B\x1b[m nul\x00 bell\x07 bs\x08 vt\x0b ff\x0c esc\x1b del\x7f c1\x85\x9b "
    "lone\ud800 pair\ud83d\ude00 "
    + b"undecodable \xff\xfe bytes".decode("utf-8", "surrogateescape")
    + " nonchar\ufffe\uffff\U0001fffe cdata]]> <tag> & \"quote' progress 10%\r20%\r\ncrlf\ttab"
)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    """tests/data/junit-10.xsd (the repository carries it). Missing = fail: a report nobody
    validated must not pass for a validated one."""
    xsd = REPO / "tests" / "data" / "junit-10.xsd"
    assert xsd.is_file(), f"JUnit schema not found at {xsd}"
    return xmlschema.XMLSchema(str(xsd))


def result(*checks: Check, status: Status = "passed", message: str = "") -> StageResult:
    stage = StageResult(stage="verify", app="shop", status=status, message=message)
    stage.checks.extend(checks)
    return stage


def render(stage: StageResult, schema: xmlschema.XMLSchema) -> ET.Element:
    """The report, validated against the schema, parsed."""
    document = to_junit(stage, PROPERTIES)
    schema.validate(document)
    return ET.fromstring(document)


def suite_of(root: ET.Element) -> ET.Element:
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def child(element: ET.Element, tag: str) -> ET.Element:
    found = element.find(tag)
    assert found is not None, f"no <{tag}> in <{element.tag}>"
    return found


def case_named(root: ET.Element, name: str) -> ET.Element:
    matches = [c for c in root.iter("testcase") if c.get("name") == name]
    assert len(matches) == 1, [c.get("name") for c in root.iter("testcase")]
    return matches[0]


def test_outcomes_map_to_failure_error_skipped(schema: xmlschema.XMLSchema) -> None:
    root = render(
        result(
            Check("health green", "passed", 1.25, "healthy after 3 probes", "GET /healthz 200"),
            Check("smoke test_home", "failed", 0.5, "assert 500 == 200", "E   assert 500 == 200"),
            Check("router", "error", 2.0, "ConnectionRefused", "Traceback ..."),
            Check("latency budget", "skipped", 0.0, "p95_ms = 0", ""),
            status="failed",
        ),
        schema,
    )
    suite = suite_of(root)
    assert suite.get("name") == "bgci.verify"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    assert suite.get("skipped") == "1"
    assert {c.get("classname") for c in suite.iter("testcase")} == {"bgci.verify"}

    passed = case_named(root, "health green")
    assert passed.get("time") == "1.250"
    assert [child.tag for child in passed] == ["system-out"]
    assert passed.findtext("system-out") == "healthy after 3 probes\nGET /healthz 200"

    failure = case_named(root, "smoke test_home").find("failure")
    assert failure is not None
    assert failure.get("message") == "assert 500 == 200"
    assert failure.text == "E   assert 500 == 200"

    error = case_named(root, "router").find("error")
    assert error is not None
    assert (error.get("message"), error.text) == ("ConnectionRefused", "Traceback ...")

    skipped = case_named(root, "latency budget")
    assert [child.tag for child in skipped] == ["skipped"]
    assert child(skipped, "skipped").get("message") == "p95_ms = 0"
    assert suite.get("time") == "3.750"


def test_failure_without_message_or_output_is_still_a_failure(
    schema: xmlschema.XMLSchema,
) -> None:
    # junit-xml silently drops a <failure> with neither message nor output.
    root = render(result(Check("switch confirmed", "failed"), Check("drain", "error")), schema)
    assert case_named(root, "switch confirmed").find("failure") is not None
    assert case_named(root, "drain").find("error") is not None
    assert (suite_of(root).get("failures"), suite_of(root).get("errors")) == ("1", "1")


def test_properties_are_the_given_ones_in_order(schema: xmlschema.XMLSchema) -> None:
    root = render(result(Check("health", "passed")), schema)
    properties = [(p.get("name"), p.get("value")) for p in root.iter("property")]
    assert properties == list(PROPERTIES.items())


def test_no_disabled_attribute_anywhere(schema: xmlschema.XMLSchema) -> None:
    # Decision: bgci drops junit-xml's "disabled" attribute rather than tolerating it.
    root = render(result(Check("health", "passed")), schema)
    assert all("disabled" not in element.attrib for element in root.iter())


def test_hostile_output_gives_valid_xml_without_escapes(schema: xmlschema.XMLSchema) -> None:
    stage = result(
        Check(NASTY, "failed", 1.0, NASTY, NASTY),
        Check("ok", "passed", 1.0, NASTY, NASTY),
        status="failed",
        message=NASTY,
    )
    properties = {**PROPERTIES, "image": NASTY}
    document = to_junit(stage, properties)
    schema.validate(document)
    root = ET.fromstring(document.encode("utf-8"))  # the bytes a CI reads from the file
    failing = next(root.iter("testcase"))
    failure = child(failing, "failure")
    texts = [failing.get("name"), failure.get("message"), failure.text]
    texts += [case_named(root, "ok").findtext("system-out")]
    texts += [p.get("value") for p in root.iter("property") if p.get("name") == "image"]
    for text in texts:
        assert text is not None
        assert "\x1b" not in text and "[31m" not in text and "window title" not in text
        assert "red" in text and "link" in text and "bytes" in text and "\U0001f600" in text
        assert "cdata]]> <tag> & \"quote'" in text
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert "progress 10%\n20%\ncrlf\ttab" in (failure.text or "")


def fuzz_strings(count: int) -> list[str]:
    """Seeded random strings drawn mostly from the characters that break XML and terminals."""
    rng = random.Random(20240601)
    pools = [
        range(0x00, 0x20),  # C0 controls, ESC included
        range(0x7F, 0xA0),  # DEL, C1 controls (8-bit CSI)
        range(0xD800, 0xE000),  # surrogates (undecodable bytes, broken pairs)
        range(0xFDD0, 0xFDF0),  # noncharacters
        range(0xFFF0, 0x10000),  # specials, U+FFFE, U+FFFF
        range(0x20, 0x7F),  # ASCII: "<", "&", "]]>" and friends
        range(0x10000, 0x110000),  # astral planes, plane-end noncharacters
    ]
    pieces = ["\x1b[", "\x1b]", "\x1b\\", "\x07", "]]>", "\r\n", "<![CDATA[", "&#0;"]
    strings = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randrange(0, 40)):
            if rng.random() < 0.1:
                chars.append(rng.choice(pieces))
            else:
                chars.append(chr(rng.choice(rng.choice(pools))))
        strings.append("".join(chars))
    return strings


FUZZ = fuzz_strings(120)


# Plain ids: the strings themselves would put surrogates into pytest's own reports.
@pytest.mark.parametrize("text", FUZZ, ids=[f"fuzz{i}" for i in range(len(FUZZ))])
def test_any_text_validates(text: str, schema: xmlschema.XMLSchema) -> None:
    outcome = OUTCOMES[len(text) % len(OUTCOMES)]
    stage = result(Check(text, outcome, 1.0, text, text), message=text)
    document = to_junit(stage, {text: text})
    schema.validate(document)
    ET.fromstring(document.encode("utf-8"))


@pytest.mark.parametrize("seconds", [1e-7, 12345.678901, -3.0, float("nan"), float("inf")])
def test_times_are_plain_non_negative_decimals(seconds: float, schema: xmlschema.XMLSchema) -> None:
    # junit-xml writes the suite time as str(float): 1e-07 breaks the schema's time pattern.
    root = render(result(Check("a", "passed", seconds), Check("b", "passed", seconds)), schema)
    for element in [root, suite_of(root), *root.iter("testcase")]:
        time = element.get("time") or ""
        assert time.replace(".", "", 1).isdigit(), time


def test_passed_stage_without_checks_has_one_passing_case(schema: xmlschema.XMLSchema) -> None:
    root = render(result(message="green is already live and verified"), schema)
    case = case_named(root, STAGE_CASE)
    assert case.get("classname") == "bgci.verify"
    assert [child.tag for child in case] == ["system-out"]
    assert case.findtext("system-out") == "green is already live and verified"


@pytest.mark.parametrize(
    ("status", "tag"), [("failed", "failure"), ("refused", "failure"), ("error", "error")]
)
def test_failing_stage_without_checks_is_never_green(
    status: Status, tag: str, schema: xmlschema.XMLSchema
) -> None:
    root = render(result(status=status, message="digest sha256:ab is quarantined"), schema)
    element = case_named(root, STAGE_CASE).find(tag)
    assert element is not None
    assert element.get("message") == "digest sha256:ab is quarantined"
    assert suite_of(root).get("failures" if tag == "failure" else "errors") == "1"


def test_failing_stage_whose_checks_all_passed_adds_a_failing_case(
    schema: xmlschema.XMLSchema,
) -> None:
    stage = result(Check("health", "passed"), status="refused", message="not verified")
    root = render(stage, schema)
    assert case_named(root, STAGE_CASE).find("failure") is not None
    # ... but a failing check already says it: no extra case then.
    root = render(result(Check("smoke", "failed", message="boom"), status="failed"), schema)
    assert [c.get("name") for c in root.iter("testcase")] == ["smoke"]


def test_write_reports_writes_a_valid_file(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    reports = tmp_path / "not" / "yet" / "there"
    paths = write_reports(result(Check("health", "passed", 0.2, output=NASTY)), reports, PROPERTIES)
    assert paths[0] == reports / "verify.xml"
    schema.validate(str(paths[0]))
    assert not [p.name for p in reports.iterdir() if p.name.endswith(".tmp")]
