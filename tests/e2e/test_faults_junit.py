"""Whatever the app prints, the JUnit reports stay valid XML (junit-10.xsd) and keep its text:
a release whose health check fails while its log is full of ANSI colours, control characters,
NUL, invalid UTF-8 and characters XML forbids (deploy-green.xml carries that log), and a smoke
test that prints the same and fails with it in its message (verify.xml)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import TRACEBACK, Project, Target, junit_cases, problem_of
from faults_support import PLATFORMS

pytestmark = pytest.mark.e2e

JUNIT_PLATFORMS = [p for p in PLATFORMS if p.values[0] in ("docker", "process")]

# printf(1) escapes: colours and a window title (ANSI), C0 controls with NUL, DEL and C1 (an 8-bit
# CSI among them), invalid UTF-8, an encoded surrogate, U+FFFE (a noncharacter XML forbids)
JUNK_PRINTF = (r"junk-start \033[1;31mRED\033[0m \033]0;title\007 ctl:\001\002\007\010\013\014"
               r"\000 del:\177 c1:\302\205\302\233 bad:\377\376\300\200 sur:\355\240\200 "
               r"nonchar:\357\277\276 junk-end\n")
JUNK_BYTES = (b"junk-start \x1b[1;31mRED\x1b[0m \x1b]0;title\x07 ctl:\x01\x02\x07\x08\x0b\x0c"
              b"\x00 del:\x7f c1:\xc2\x85\xc2\x9b bad:\xff\xfe\xc0\x80 sur:\xed\xa0\x80 "
              b"nonchar:\xef\xbf\xbe junk-end\n")

JUNK_SMOKE = f'''\
import sys

JUNK = {JUNK_BYTES!r}


def test_prints_junk_and_fails() -> None:
    sys.stdout.buffer.write(JUNK)
    sys.stdout.flush()
    sys.stderr.buffer.write(JUNK)
    sys.stderr.flush()
    assert False, JUNK.decode("utf-8", "surrogateescape")
'''


@pytest.fixture(params=JUNIT_PLATFORMS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    from conftest import _open_target

    opened = _open_target(request.param, request)
    try:
        yield opened
    finally:
        opened.cleanup()


@contextlib.contextmanager
def junk_release(target: Target, where: Path) -> Iterator[str]:
    """v1's code made to print JUNK_BYTES when it starts and to answer /healthz with 503."""
    if target.kind == "docker":
        script = f"printf '{JUNK_PRINTF}'; exec gunicorn app:app --bind 0.0.0.0:8000"
        dockerfile = (f"FROM {target.release('v1')}\nENV FAIL_HEALTH=1\n"
                      f"CMD {json.dumps(['/bin/sh', '-c', script])}\n")
        client: Any = target.client  # type: ignore[attr-defined]
        ref = f"bgci-e2e-faults/junk-{where.name}:junk"
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True)
        try:
            yield ref
        finally:
            client.images.remove(ref, force=True)
    elif target.kind == "process":
        source = Path(target.release("v1"))
        state_dir: Path = target.state_dir  # type: ignore[attr-defined]
        release = state_dir / "faults-junk" / where.name
        shutil.copytree(source / "app", release / "app", symlinks=True)
        (release / "venv").symlink_to(source / "venv")
        app_py = release / "app" / "app.py"
        app_py.write_text(app_py.read_text(encoding="utf-8") + "\nimport sys\n"
                          f"sys.stdout.buffer.write({JUNK_BYTES!r})\nsys.stdout.flush()\n",
                          encoding="utf-8")
        (release / "app" / "UNHEALTHY").write_text("made unhealthy by the test\n")
        info = json.loads((source / "release.json").read_text(encoding="utf-8"))
        info.update(id=f"junk-{where.name}", digest=f"sha256:junk-{where.name}")
        (release / "release.json").write_text(json.dumps(info), encoding="utf-8")
        try:
            yield str(release)
        finally:
            shutil.rmtree(release, ignore_errors=True)
    else:
        raise AssertionError(f"no junk release for platform {target.kind!r}")


def assert_cleaned(text: str, *, via_pytest: bool = False) -> None:
    """The junk's words survive; its escapes and forbidden characters do not. (What came through
    pytest's own JUnit file was already escaped by pytest, as visible text like ``#x1B``.)"""
    assert "junk-start" in text and "RED" in text and "junk-end" in text, text
    bad = sorted({hex(ord(c)) for c in text
                  if (ord(c) < 0x20 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F
                  or ord(c) in (0xFFFE, 0xFFFF) or 0xD800 <= ord(c) <= 0xDFFF})
    assert not bad, f"characters that do not belong in the report: {bad}"
    if not via_pytest:
        assert "[1;31m" not in text and "]0;title" not in text, "ANSI escapes left in the report"


@pytest.mark.e2e
def test_junit_stays_valid_whatever_the_app_prints(
        target: Target, new_project: Callable[..., Project], junit_schema: Any,
        tmp_path: Path) -> None:
    p = new_project(schema=junit_schema, smoke_files={"test_zz_junk.py": JUNK_SMOKE})

    # a smoke test that prints junk and fails with it
    p.run("deploy-green", "--image", target.release("v1"))
    failed = p.run("verify", expect=1)
    assert TRACEBACK not in failed.text
    cases = junit_cases(p.junit("verify"))
    junk_case = next(c for name, c in cases.items() if name.endswith("test_prints_junk_and_fails"))
    problem = problem_of(junk_case)
    assert problem is not None
    assert_cleaned(problem.get("message", "") + (problem.text or ""), via_pytest=True)

    # a release that prints junk at start and never gets healthy: its log goes into the report
    with junk_release(target, tmp_path) as junk:
        failed = p.run("--set", "health.deadline=4", "deploy-green", "--image", junk, expect=1)
        assert TRACEBACK not in failed.text
    case = junit_cases(p.junit("deploy-green"))["health blue"]
    failure = case.find("failure")
    assert failure is not None and "last lines of blue's output" in (failure.text or "")
    assert_cleaned(failure.text or "")

    # both files are UTF-8 XML that junit-10.xsd accepts (checked after every run of the project)
    for stage in ("verify", "deploy-green"):
        (p.reports / f"{stage}.xml").read_bytes().decode("utf-8")
    p.assert_junit_valid()
