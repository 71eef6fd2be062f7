"""Database migrations as lifecycle hooks, end to end on the process platform: the real CLI deploys
examples/migrations-app (Flask + SQLAlchemy + Alembic, one SQLite file shared by both colours)
behind a managed Traefik, exactly as docs/migrations.md tells a user to.

v2 adds a column with an Alembic migration run as ``hooks.pre_switch`` with ``run_in = "green"``;
``verify.against_blue`` runs the smoke suite against both colours after it. A webhook receiver on
127.0.0.1 records every payload, and ``hooks.on_failure`` writes what it was told to a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_support import SETUP_HINT, bgci_argv, clean_env, fresh_port
from requests.adapters import HTTPAdapter

from bgci import detached
from tests.helpers.httpserver import Script, serve

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "migrations-app"
WHEELS = Path(os.environ.get("BGCI_CACHE", "/var/cache/bgci")) / "wheels"
HEADER = "X-Bgci-Color"
STAGES = ("build", "deploy-green", "verify", "switch")

# The first "contract" step done too early: release 1.0.0 still reads notes.text.
RENAME_MIGRATION = '''"""Rename notes.text to notes.body (breaks release 1.0.0).

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE notes RENAME COLUMN text TO body")
'''

# A migration that fails on a table with rows: a NOT NULL column needs a default.
FAILING_MIGRATION = '''"""Add notes.owner, NOT NULL without a default (fails: the table has rows).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("owner", sa.Text, nullable=False))
'''


def pip_env() -> dict[str, str]:
    """Offline release builds from the test wheelhouse (which test-env.sh extends with the
    example's SQLAlchemy and Alembic); another Python than the wheelhouse's builds from PyPI."""
    if sys.version_info[:2] != (3, 11):
        return {}
    if not any(WHEELS.glob("alembic-*.whl")) or not any(WHEELS.glob("sqlalchemy-*.whl")):
        pytest.fail(f"no Alembic/SQLAlchemy wheels in {WHEELS}: {SETUP_HINT}", pytrace=False)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}


def own_processes(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (a directory only this test uses)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            stat = detached.proc_stat(int(entry.name))
            if str(path) in cmdline and stat is not None and stat.state != "Z":
                found.append(int(entry.name))
    return found


@dataclass
class Notes:
    """A copy of examples/migrations-app and the environment every bgci call of the test gets."""

    root: Path
    state: Path
    db: Path
    env: dict[str, str]
    live_url: str
    preview_url: str
    webhook: Script
    failure_facts: Path

    def bgci(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*bgci_argv(), *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)
        if expect is not None:
            assert proc.returncode == expect, (
                f"`bgci {' '.join(args)}` exited {proc.returncode}, expected {expect}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return proc

    def report(self, stage: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "bgci-reports" / f"{stage}.json").read_text())
        return data

    def cases(self, stage: str) -> list[ET.Element]:
        root = ET.parse(self.root / "bgci-reports" / f"{stage}.xml").getroot()
        return list(root.iter("testcase"))

    def case(self, stage: str, name: str) -> ET.Element:
        found = [c for c in self.cases(stage) if c.get("name") == name]
        assert len(found) == 1, f"{stage}.xml has {len(found)} test cases named {name!r}"
        return found[0]

    def deploy(self, tag: str) -> None:
        """What docs/migrations.md runs for each release."""
        for stage in STAGES:
            self.bgci(*((stage, "--tag", tag) if stage == "build" else (stage,)))

    def revision(self) -> str | None:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True,
                                                timeout=10)) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None

    def columns(self) -> list[str]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True,
                                                timeout=10)) as conn:
            return [str(row[1]) for row in conn.execute("PRAGMA table_info(notes)")]

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.webhook.posts]


def who(url: str) -> tuple[int, str | None, str | None]:
    """(HTTP status, X-Bgci-Color, version) of one fresh GET ``url``/version."""
    response = requests.get(f"{url}/version", timeout=10)
    version = response.json().get("version") if response.status_code == 200 else None
    return response.status_code, response.headers.get(HEADER), version


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[Notes]:
    root = tmp_path / "notes-demo"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", "bgci-reports"))
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    state, db, facts = tmp_path / "state", tmp_path / "db" / "notes.db", tmp_path / "failed.env"
    webhook = Script(status=204, body="")
    with serve(webhook) as receiver:
        env = clean_env({
            # the example's bgci.toml as it is, but with this test's ports, state and database
            "BGCI_PLATFORM_STATE_DIR": str(state), "BGCI_ROUTER_LISTEN": listen,
            "BGCI_ROUTER_PREVIEW": preview,
            "BGCI_PLATFORM_ENV": f'{{ DATABASE_URL = "sqlite:///{db}" }}',
            "BGCI_HEALTH_INTERVAL": "0.2", "BGCI_SWITCH_DRAIN": "1",
            "BGCI_NOTIFY_URL": f"{receiver}/bgci",
            "BGCI_HOOKS_ON_FAILURE_COMMAND": f"env | grep '^BGCI_' | sort > {facts}",
            **pip_env(),
        })
        made = Notes(root, state, db, env, f"http://{listen}", f"http://{preview}", webhook, facts)
        try:
            yield made
        finally:
            made.bgci("down", expect=None)
            left = own_processes(tmp_path)
            for pid in left:  # this test's own processes, by pid, so a failure leaks nothing
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            assert not left, f"processes left running after the test: {left}"


# -- traffic and schema, watched from outside while `bgci switch` runs --------------------------
@dataclass
class Answer:
    started: float
    finished: float
    status: int | None
    colour: str | None
    error: str | None


@dataclass
class NotesLoop:
    """Threads that POST a note and GET the notes through ``url`` back to back (keep-alive, no
    retries), recording every answer; and a watcher that records when the database's Alembic
    revision changes (read straight from the SQLite file)."""

    url: str
    db: Path
    threads: int = 2
    answers: list[Answer] = field(default_factory=list)
    revisions: list[tuple[float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> NotesLoop:
        self._workers = [threading.Thread(target=self._loop, daemon=True)
                         for _ in range(self.threads)]
        self._workers.append(threading.Thread(target=self._watch, daemon=True))
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 20
        while len(self.answers) < count:
            assert time.monotonic() < deadline, "the request loop gets no answers"
            time.sleep(0.05)

    def _loop(self) -> None:
        hard_stop = time.monotonic() + 240
        with requests.Session() as session:
            session.mount("http://", HTTPAdapter(max_retries=0))  # a lost request must show
            i = 0
            while not self._stop.is_set() and time.monotonic() < hard_stop:
                started = time.monotonic()
                try:
                    if i % 2 == 0:
                        response = session.post(f"{self.url}/notes", timeout=10,
                                                json={"text": f"loop {uuid.uuid4().hex}"})
                        ok = response.status_code == 201
                    else:
                        response = session.get(f"{self.url}/notes", timeout=10)
                        ok = response.status_code == 200 and isinstance(response.json(), list)
                    error = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
                    self.answers.append(Answer(started, time.monotonic(), response.status_code,
                                               response.headers.get(HEADER), error))
                except Exception as exc:  # every failure is a finding, whatever its type
                    self.answers.append(Answer(started, time.monotonic(), None, None,
                                               f"{type(exc).__name__}: {exc}"))
                i += 1

    def _watch(self) -> None:
        last: str | None = "(unread)"
        while not self._stop.is_set():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True,
                                                        timeout=10)) as conn:
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                current = str(row[0]) if row else None
            except sqlite3.Error:
                current = last
            if current != last:
                self.revisions.append((time.monotonic(), current))
                last = current
            time.sleep(0.02)

    def changed_to(self, revision: str) -> float | None:
        return next((t for t, rev in self.revisions if rev == revision), None)

    def errors(self) -> list[str]:
        return [a.error for a in self.answers if a.error]


# -- the tests ----------------------------------------------------------------------------------
def test_the_v2_migration_runs_once_in_green_before_the_switch_while_blue_keeps_serving(
        notes: Notes) -> None:
    # release 1.0.0: its pre_switch hook creates the schema (0001) before the first switch
    notes.deploy("v1")
    assert who(notes.live_url) == (200, "blue", "1.0.0")
    first = notes.case("switch", "hook pre_switch")
    assert "Running upgrade  -> 0001" in (first.findtext("system-out") or "")
    skipped = notes.case("switch", "after pre_switch: smoke against the live colour")
    assert skipped.find("skipped") is not None  # nothing was live yet
    assert notes.revision() == "0001"
    kept = requests.post(f"{notes.live_url}/notes", json={"text": "written by 1.0.0"}, timeout=10)
    assert kept.status_code == 201

    # release 2.0.0 as docs/migrations.md makes it: the files in next/ over the working copy
    shutil.copytree(notes.root / "next", notes.root, dirs_exist_ok=True)
    notes.bgci("build", "--tag", "v2")
    notes.bgci("deploy-green")
    notes.bgci("verify")
    # neither deploy-green nor verify migrated: green was verified on the old schema, where the
    # smoke suite's database test skips itself
    assert notes.revision() == "0001"
    notes_test = notes.case("verify", "smoke::test_smoke::test_notes_round_trip")
    assert notes_test.find("skipped") is not None
    for stage in ("deploy-green", "verify"):
        assert not [c for c in notes.cases(stage) if c.get("name", "").startswith("hook ")]

    with NotesLoop(notes.live_url, notes.db) as loop:
        loop.wait_for(10)
        switch_started = time.monotonic()
        switched = notes.bgci("switch")
        switch_ended = time.monotonic()
        time.sleep(1.0)  # and after it
    assert not loop.errors(), loop.errors()[:10]

    # the migration ran exactly once, in green's release (only v2's sources hold 0002), and
    # before the traffic moved
    hook = notes.case("switch", "hook pre_switch")
    assert hook.find("failure") is None and hook.find("error") is None
    output = hook.findtext("system-out") or ""
    assert output.count("Running upgrade 0001 -> 0002") == 1, output
    assert "exited 0 in a one-off of v2 (sha256:" in output  # the new release, not the runner
    # a hook is named, not its command (which may hold secrets); -v shows the command
    assert "hook pre_switch (in a one-off of v2" in switched.stderr
    assert notes.revision() == "0002" and notes.columns().count("author") == 1
    releases = notes.state / "notes-demo" / "releases"
    assert (releases / "v2" / "app" / "migrations" / "versions" / "0002_note_author.py").is_file()
    assert not (releases / "v1" / "app" / "migrations" / "versions" / "0002_note_author.py").exists()
    names = [c.get("name", "") for c in notes.cases("switch")]
    assert names.index("hook pre_switch") < names.index("switch confirmation")
    migrated = loop.changed_to("0002")
    assert migrated is not None and switch_started < migrated < switch_ended
    first_green = min(a.started for a in loop.answers if a.colour == "green")
    assert migrated < first_green

    # blue served before, during and after the migration, without one error
    blue = [a for a in loop.answers if a.colour == "blue"]
    assert any(switch_started < a.finished < migrated for a in blue)  # while the switch migrated
    assert len([a for a in blue if a.started > migrated]) >= 5  # on the migrated schema, live
    assert {a.colour for a in loop.answers} == {"blue", "green"}
    assert all(a.colour == "green" for a in loop.answers if a.started > switch_ended)

    # the smoke suite proved both releases on the migrated schema before the switch
    for colour, role in (("blue", "live"), ("green", "new")):
        case = notes.case("switch",
                          f"after pre_switch, {colour} ({role}): smoke::test_smoke::test_notes_round_trip")
        assert case.find("failure") is None and case.find("skipped") is None

    # 2.0.0 is live and reads what 1.0.0 wrote; 1.0.0 still works on the new schema (preview)
    assert who(notes.live_url) == (200, "green", "2.0.0")
    live_notes = requests.get(f"{notes.live_url}/notes", timeout=10).json()
    assert {"text": "written by 1.0.0", "author": "anonymous"}.items() <= next(
        n for n in live_notes if n["text"] == "written by 1.0.0").items()
    signed = requests.post(f"{notes.live_url}/notes", json={"text": "v2", "author": "ada"},
                           timeout=10)
    assert signed.status_code == 201 and signed.json()["author"] == "ada"
    old = requests.get(f"{notes.preview_url}/notes", timeout=10)
    assert old.status_code == 200 and old.headers[HEADER] == "blue"
    assert "author" not in old.json()[0]

    # the webhook got one payload per stage outcome, in order, each saying what its report says
    payloads = notes.payloads()
    assert [(p["stage"], p["outcome"]) for p in payloads] == [(s, "passed") for s in STAGES] * 2
    assert payloads[-1]["live_color"] == "green" and payloads[-1]["image"] == "v2"
    assert payloads[-1]["digest"] == notes.report("switch")["digest"]
    assert not notes.failure_facts.exists()  # nothing failed: no on_failure hook


def test_an_unsafe_migration_leaves_live_traffic_on_blue_with_exit_1_and_the_reason_in_switch_xml(
        notes: Notes) -> None:
    notes.deploy("v1")
    requests.post(f"{notes.live_url}/notes", json={"text": "a row"}, timeout=10).raise_for_status()
    versions = notes.root / "migrations" / "versions"

    # 1. a migration that fails: exit 1, its output in switch.xml, no traffic moved
    (versions / "0002_note_owner.py").write_text(FAILING_MIGRATION)
    (notes.root / "VERSION").write_text("2.0.0\n")
    notes.bgci("build", "--tag", "v2-failing")
    notes.bgci("deploy-green")
    notes.bgci("verify")
    sent = len(notes.webhook.posts)
    with NotesLoop(notes.live_url, notes.db) as loop:
        loop.wait_for(6)
        failed = notes.bgci("switch", expect=1)
        time.sleep(0.5)
    assert not loop.errors(), loop.errors()[:10]
    assert {a.colour for a in loop.answers} == {"blue"}
    assert ("hook pre_switch failed in a one-off of the new release for green: "
            "it exited 1") in failed.stderr  # as docs/migrations.md says
    assert "Traceback" not in failed.stderr
    hook = notes.case("switch", "hook pre_switch")
    failure = hook.find("failure")
    assert failure is not None and "hook pre_switch exited 1" in failure.get("message", "")
    assert "Cannot add a NOT NULL column" in (failure.text or "")
    names = [c.get("name") for c in notes.cases("switch")]
    assert "switch confirmation" not in names and not any("after pre_switch" in str(n) for n in names)
    assert who(notes.live_url) == (200, "blue", "1.0.0")
    assert notes.revision() == "0001" and "owner" not in notes.columns()
    report = notes.report("switch")
    assert report["exit_code"] == 1 and report["live_colour"] == "blue"
    # on_failure ran on the runner, told which stage failed and why, and is in the report too
    facts = dict(line.split("=", 1) for line in notes.failure_facts.read_text().splitlines()
                 if "=" in line)
    assert facts["BGCI_STAGE"] == "switch" and facts["BGCI_OUTCOME"] == "failed"
    assert facts["BGCI_EXIT_CODE"] == "1" and facts["BGCI_LIVE_COLOR"] == "blue"
    assert facts["BGCI_COLOR"] == "green" and facts["BGCI_IMAGE"] == "v2-failing"
    assert notes.case("switch", "hook on_failure").find("failure") is None
    # the webhook heard the failure, once
    assert [(p["stage"], p["outcome"], p["exit_code"]) for p in notes.payloads()[sent:]] == [
        ("switch", "failed", 1)]
    status = json.loads(notes.bgci("--json", "status").stdout)["extra"]["status"]
    assert status["live"] == "blue"

    # 2. a migration that succeeds but breaks the live release (a "contract" done too early):
    #    verify.against_blue catches it before traffic moves
    (versions / "0002_note_owner.py").unlink()
    (versions / "0002_rename_text.py").write_text(RENAME_MIGRATION)
    notes.failure_facts.unlink()
    notes.bgci("build", "--tag", "v2-rename")
    notes.bgci("deploy-green")
    notes.bgci("verify")
    caught = notes.bgci("switch", expect=1)
    assert "after the pre_switch hook the smoke suite fails" in caught.stderr
    assert notes.case("switch", "hook pre_switch").find("failure") is None
    blue_case = notes.case(
        "switch", "after pre_switch, blue (live): smoke::test_smoke::test_notes_round_trip")
    assert blue_case.find("failure") is not None
    assert "switch confirmation" not in [c.get("name") for c in notes.cases("switch")]
    assert who(notes.live_url) == (200, "blue", "1.0.0")
    assert "BGCI_STAGE=switch" in notes.failure_facts.read_text()


def test_the_worked_example_of_docs_migrations_md_runs_as_written(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "migrations.md").read_text()
    section = doc[doc.index("## Worked example"):]
    script = section[section.index("```sh\n") + 6:]
    script = script[:script.index("```")]
    assert script.startswith("cp -r examples/migrations-app notes-demo && cd notes-demo\n")
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    # the user's ports are taken on this machine: the test's, in the commands and in bgci's env
    script = script.replace("127.0.0.1:8080", listen).replace("127.0.0.1:8081", preview)
    (tmp_path / "examples").symlink_to(REPO / "examples")  # "from the root of a bgci checkout"
    db = tmp_path / "db" / "notes.db"
    env = clean_env({
        "BGCI_PLATFORM_STATE_DIR": str(tmp_path / "state"), "BGCI_ROUTER_LISTEN": listen,
        "BGCI_ROUTER_PREVIEW": preview, "BGCI_PLATFORM_ENV": f'{{ DATABASE_URL = "sqlite:///{db}" }}',
        "BGCI_HEALTH_INTERVAL": "0.2", "BGCI_SWITCH_DRAIN": "1", **pip_env(),
        "PATH": f"{Path(bgci_argv()[0]).parent}{os.pathsep}{os.environ['PATH']}",
    })
    try:
        proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
    finally:
        if (tmp_path / "notes-demo" / "bgci.toml").is_file():
            subprocess.run([*bgci_argv(), "--reports", str(tmp_path / "cleanup"), "down"],
                           cwd=tmp_path / "notes-demo", env=env, capture_output=True, timeout=120,
                           check=False)
        left = own_processes(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    assert not left, f"the walk-through left processes running: {left}"
    lines = proc.stdout.splitlines()
    live, old = (json.loads(line) for line in lines if line.startswith("[{"))
    assert {"text": "written by v1", "author": "anonymous"}.items() <= next(
        n for n in live if n["text"] == "written by v1").items()
    assert all("author" not in n for n in old)  # the preview: blue, 1.0.0, on the new schema
    assert "Running upgrade 0001 -> 0002" in proc.stderr
    assert "bgci down: stopped the router and blue and green" in proc.stdout
    switch = ET.parse(tmp_path / "notes-demo" / "bgci-reports" / "switch.xml").getroot()
    assert switch.find(".//failure") is None and switch.find(".//error") is None
