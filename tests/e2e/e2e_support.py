"""What the end-to-end tests share: running the real CLI, a project directory per test, the
platform a test deploys to (``Target``), reading reports, asking the live address who answered,
and a request loop that watches a cut-over.

Nothing here is a pytest fixture (those are in ``conftest.py``); everything here is plain code so
a test reads as a user's session: run a stage, look at the exit code, the reports and the traffic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tests` is not a package: make tests/helpers importable
    sys.path.insert(0, str(REPO))

from tests.helpers.images import (  # noqa: E402
    EXAMPLE_APP,
    apply_overrides,
    default_config,
    test_env,
    to_toml,
)
from tests.helpers.ports import fresh_port  # noqa: E402

SETUP_HINT = "run `bash scripts/test-env.sh` as root first (it starts dockerd and builds the test images)"
COLOUR_HEADER = "X-Bgci-Color"
TRACEBACK = "Traceback (most recent call last)"  # what bgci must never print without --debug
COLOURS = ("blue", "green")
STAGE_TIMEOUT = 300.0  # seconds one CLI call may take before the test calls it hung
HTTP_TIMEOUT = 10.0

# Commands whose reports are named after them (``bgci lock status`` writes lock.*). Not ``deploy``:
# it writes the reports of the stages it runs (build.*, deploy-green.*, verify.*, switch.*).
STAGE_COMMANDS = ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire",
                  "down", "up", "router", "lock")
# Global options that take a value (they come before the command).
_VALUE_OPTIONS = ("--config", "--reports", "--set")
# Variables that would make bgci believe it runs in a CI, or change its options behind the test.
_STRIP_PREFIXES = ("BGCI_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "RUNNER_", "PYTEST_")
_STRIP_NAMES = {"CI", "BUILD_URL", "BUILD_NUMBER", "JOB_NAME", "JOB_URL", "HUDSON_URL"}


def bgci_argv() -> list[str]:
    """The installed ``bgci`` console script of this interpreter (what users run)."""
    script = Path(sys.executable).with_name("bgci")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bgci"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CI or BGCI_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES}
    env.update(extra or {})
    return env


def unique_app(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- one CLI call ----------------------------------------------------------------------------
@dataclass
class Run:
    """One finished ``bgci`` process."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    seconds: float
    pid: int = 0
    started: float = 0.0  # time.monotonic() when it began

    def __str__(self) -> str:
        return (f"`bgci {' '.join(self.args)}` exited {self.code} after {self.seconds:.1f}s\n"
                f"--- stdout ---\n{self.out[-4000:]}\n--- stderr ---\n{self.err[-4000:]}")

    @property
    def text(self) -> str:
        return self.out + self.err


def command_of(args: Iterable[str]) -> str | None:
    """The subcommand in ``args`` (global options and their values skipped)."""
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i]
        if item in _VALUE_OPTIONS:
            i += 2
            continue
        if not item.startswith("-"):
            return item
        i += 1
    return None


def reports_dir_of(args: Iterable[str], default: Path) -> Path:
    """The ``--reports DIR`` global option in ``args``, else ``default``."""
    items = list(args)
    i = 0
    while i < len(items) - 1 and items[i].startswith("-"):
        if items[i] == "--reports":
            return Path(items[i + 1])
        i += 2 if items[i] in _VALUE_OPTIONS else 1
    return default


# -- platforms -------------------------------------------------------------------------------
RELEASES: dict[str, tuple[str, bool]] = {  # name -> (VERSION, unhealthy)
    "v1": ("1.0.0", False),
    "v2": ("2.0.0", False),
    "v3": ("3.0.0", False),
    "unhealthy": ("6.6.6", True),
}


class Target(Protocol):
    """The platform a test deploys to. Everything platform-specific a test needs is here, so the
    same tests run against every platform (``docker`` now; ``process`` later)."""

    kind: str
    config_overrides: dict[str, Any]  # merged into every project's bgci.toml
    env: dict[str, str]  # extra environment for every bgci call

    def release(self, name: str) -> str:
        """What ``deploy-green --image`` takes for release ``name`` (v1, v2, v3, unhealthy)."""

    def digest(self, name: str) -> str:
        """The digest bgci records for release ``name``."""

    def version(self, name: str) -> str:
        """The version release ``name`` reports on /version."""

    def adopt(self, app: str) -> None:
        """Remember ``app`` so that :meth:`cleanup` removes everything bgci made for it."""

    def running(self, app: str) -> dict[str, str]:
        """colour -> identity (container id, pid...) of each colour of ``app`` running now."""

    def snapshot(self, app: str) -> list[tuple[str, ...]]:
        """Everything of ``app`` on the platform, to compare before/after (nothing changed)."""

    def cleanup(self) -> None:
        """Remove every resource of every adopted app; fail when something is left."""


# -- a project directory ----------------------------------------------------------------------
@dataclass
class Project:
    """A user's checkout: ``bgci.toml`` and the smoke suite, where the stages are run from."""

    root: Path
    app: str
    listen: str
    preview: str
    target: Target
    schema: Any = None  # an xmlschema.XMLSchema: every JUnit report is validated against it
    junit_problems: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    @property
    def reports(self) -> Path:
        return self.root / "bgci-reports"

    @property
    def live_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def preview_url(self) -> str:
        return f"http://{self.preview}"

    # -- running the CLI -----------------------------------------------------------------
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return clean_env({**self.target.env, **(extra or {})})

    def run(self, *args: str, expect: int | None = 0, env: Mapping[str, str] | None = None,
            timeout: float = STAGE_TIMEOUT) -> Run:
        """``bgci ARGS`` in the project directory; asserts the exit code when ``expect`` is set and
        that the stage wrote its reports (``<stage>.xml``, ``<stage>.json``, ``bgci.env``)."""
        command = command_of(args)
        reports = reports_dir_of(args, self.reports)
        stage = command if command in STAGE_COMMANDS else None
        if stage:  # a report left by an earlier run must not pass for this run's
            for suffix in (".xml", ".json"):
                (reports / f"{stage}{suffix}").unlink(missing_ok=True)
        started = time.monotonic()
        try:
            proc = subprocess.run([*bgci_argv(), *args], cwd=self.root, env=self.env(env),
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"`bgci {' '.join(args)}` did not finish within {timeout:.0f}s:\n"
                                 f"{exc.stderr!r}") from None
        run = Run(tuple(args), proc.returncode, proc.stdout, proc.stderr,
                  time.monotonic() - started, started=started)
        self.runs.append(run)
        if expect is not None:
            assert run.code == expect, f"expected exit {expect}:\n{run}"
        if stage:
            self.check_reports(stage, run, reports)
        return run

    def start(self, *args: str, env: Mapping[str, str] | None = None,
              new_session: bool = False) -> subprocess.Popen[str]:
        """``bgci ARGS`` in the background (the caller must wait for it). Ctrl-C reaches it
        as it reaches a person's bgci, even when this test run was started in the background
        (a shell's ``&`` makes its jobs ignore SIGINT, and so would their children)."""
        return subprocess.Popen([*bgci_argv(), *args], cwd=self.root, env=self.env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=new_session, preexec_fn=_default_sigint)

    def check_reports(self, stage: str, run: Run, reports: Path | None = None) -> None:
        reports = reports or self.reports
        xml_path, json_path = reports / f"{stage}.xml", reports / f"{stage}.json"
        for path in (xml_path, json_path, reports / "bgci.env"):
            assert path.is_file(), f"{path.name} was not written by:\n{run}"
        data = json.loads(json_path.read_text(encoding="utf-8"))
        assert data["stage"] == stage and data["exit_code"] == run.code, (
            f"{json_path.name} says stage {data['stage']!r} exit {data['exit_code']}:\n{run}")
        root = ET.parse(xml_path).getroot()
        names = [s.get("name") for s in root.iter("testsuite")]
        assert names == [f"bgci.{stage}"], f"{xml_path.name} has suites {names}"
        if run.code != 0:
            assert root.find(".//failure") is not None or root.find(".//error") is not None, (
                f"{xml_path.name} of a stage that exited {run.code} shows no failure or error:\n"
                f"{xml_path.read_text(encoding='utf-8')}")
        if self.schema is not None:
            errors = list(self.schema.iter_errors(str(xml_path)))
            if errors:
                self.junit_problems.append(
                    f"{xml_path.name} after `bgci {' '.join(run.args)}` (exit {run.code}) does not "
                    f"validate against junit-10.xsd: {errors[0].reason} at {errors[0].path}")

    def assert_junit_valid(self) -> None:
        assert self.schema is not None, "make the project with schema=junit_schema"
        assert not self.junit_problems, "\n".join(self.junit_problems)

    # -- reading what the stages left -----------------------------------------------------
    def result(self, stage: str, reports: Path | None = None) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            ((reports or self.reports) / f"{stage}.json").read_text(encoding="utf-8"))
        return data

    def junit(self, stage: str, reports: Path | None = None) -> ET.Element:
        return ET.parse((reports or self.reports) / f"{stage}.xml").getroot()

    def dotenv(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in (self.reports / "bgci.env").read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
        return values

    def status(self, **kw: Any) -> dict[str, Any]:
        """``bgci --json status --history 100``: the ``status`` document."""
        run = self.run("--json", "status", "--history", "100", **kw)
        data: dict[str, Any] = json.loads(run.out)["extra"]["status"]
        return data

    # -- traffic --------------------------------------------------------------------------
    def answer(self, url: str | None = None) -> Answer:
        return answer(url or self.live_url)

    def assert_serves(self, colour: str, version: str, url: str | None = None) -> None:
        """GET /version through ``url`` (default: live) is answered by ``colour`` at ``version``."""
        got = self.answer(url)
        where = "preview" if url == self.preview_url else "live"
        assert (got.status, got.colour, got.version) == (200, colour, version), (
            f"{where} address {url or self.live_url} answered {got}; expected {colour} {version}")
        assert got.body_colour == colour, f"/version says color {got.body_colour}, header {colour}"


@dataclass
class Answer:
    status: int
    colour: str | None  # the X-Bgci-Color header the router added
    version: str | None  # the app's /version
    body_colour: str | None  # the app's own idea of its colour (BGCI_COLOR)
    body: str = ""


def answer(url: str) -> Answer:
    """One fresh GET ``url``/version: who answered."""
    with requests.Session() as session:
        response = session.get(f"{url}/version", timeout=HTTP_TIMEOUT)
        version = colour = None
        if response.status_code == 200:
            data = response.json()
            version, colour = data.get("version"), data.get("color")
        return Answer(response.status_code, response.headers.get(COLOUR_HEADER), version, colour,
                      response.text[:300])


def make_project(root: Path, target: Target, overrides: Mapping[str, Any] | None = None, *,
                 smoke_files: Mapping[str, str] | None = None, schema: Any = None,
                 app: str | None = None) -> Project:
    """A project directory for a new app: ``bgci.toml`` (the test defaults of
    tests/helpers/images.py, free ports, the target's keys, then ``overrides``) and the example
    app's smoke suite (plus ``smoke_files``: name -> source)."""
    app = app or unique_app()
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    config = default_config(test_env())
    apply_overrides(config, {"app": app, "router.listen": listen, "router.preview": preview})
    apply_overrides(config, target.config_overrides)
    apply_overrides(config, overrides or {})
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE_APP / "smoke", root / "smoke",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    for name, source in (smoke_files or {}).items():
        (root / "smoke" / name).write_text(source, encoding="utf-8")
    (root / "bgci.toml").write_text(to_toml(config), encoding="utf-8")
    target.adopt(app)
    return Project(root=root, app=app, listen=listen, preview=preview, target=target,
                   schema=schema)


def deploy_live(p: Project, release: str) -> None:
    """deploy-green, verify, switch: ``release`` ends up live."""
    ref = p.target.release(release)
    p.run("deploy-green", "--image", ref)
    p.run("verify")
    p.run("switch")


def junit_cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in root.iter("testcase")}


def problem_of(case: ET.Element) -> ET.Element | None:
    """The ``<failure>`` or ``<error>`` of a test case, if it has one."""
    found = case.find("failure")
    return found if found is not None else case.find("error")


# -- traffic during a cut-over ---------------------------------------------------------------
@dataclass
class Request:
    started: float
    finished: float
    kind: str
    status: int | None
    colour: str | None
    version: str | None = None
    error: str | None = None
    at: float = 0.0  # time.time() when it was answered (to compare with bgci's own timeline)


class RequestLoop:
    """A few threads, each with its own keep-alive session, sending GET / and POST /echo (or
    only ``kinds``) through ``url`` back to back (no retries) until stopped; every request is
    recorded."""

    def __init__(self, url: str, threads: int = 3, hard_cap: float = 60.0,
                 kinds: tuple[str, ...] = ("GET /", "POST /echo")) -> None:
        self.url = url
        self.kinds = kinds
        self.records: list[list[Request]] = [[] for _ in range(threads)]
        self._stop = threading.Event()
        self._deadline = time.monotonic() + hard_cap
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> RequestLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def stop_after(self, seconds: float) -> None:
        self._stop.wait(seconds)
        self._stop.set()

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Until every thread has ``count`` answered requests."""
        deadline = time.monotonic() + timeout
        while min(len(r) for r in self.records) < count:
            assert time.monotonic() < deadline, "the request loop does not get answers"
            time.sleep(0.05)

    def _loop(self, n: int) -> None:
        out = self.records[n]
        with requests.Session() as session:
            adapter = HTTPAdapter(max_retries=0)  # a lost request must show, not be retried
            session.mount("http://", adapter)
            i = 0
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                started = time.monotonic()
                kind = self.kinds[i % len(self.kinds)]
                try:
                    if kind == "GET /":
                        response = session.get(f"{self.url}/", timeout=HTTP_TIMEOUT)
                        text = response.text
                        version = text.rsplit(" ", 1)[-1].strip() if "flask-demo" in text else None
                        error = None if version else f"unexpected body {text[:100]!r}"
                    else:
                        payload = {"thread": n, "i": i, "id": uuid.uuid4().hex}
                        response = session.post(f"{self.url}/echo", json=payload,
                                                 timeout=HTTP_TIMEOUT)
                        version = None
                        same = response.status_code == 200 and response.json() == payload
                        error = None if same else f"echo returned {response.text[:100]!r}"
                    out.append(Request(started, time.monotonic(), kind, response.status_code,
                                       response.headers.get(COLOUR_HEADER), version, error,
                                       time.time()))
                except Exception as exc:  # every failure is a finding, whatever its type
                    out.append(Request(started, time.monotonic(), kind, None, None, None,
                                       f"{type(exc).__name__}: {exc}", time.time()))
                i += 1
