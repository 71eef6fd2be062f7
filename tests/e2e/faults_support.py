"""What the fault-injection tests (``test_faults_*.py``) share: one deployed app per platform for a
whole module, a burst of requests that says who serves live traffic, ``kill -9`` of bgci at a
checkpoint (``bgci/faults.py``), gates that hold a stage still while the test breaks something,
fresh releases (new digests) and faults done to a colour through the platform.

Plain code; the module-scoped fixtures are written in the test modules with :func:`shared_app`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

# The e2e suite's conftest (tests/e2e has no __init__: pytest imports it as ``conftest``): the
# platforms every platform-neutral test runs on, and how a ``Target`` for one of them is opened.
from conftest import PLATFORMS, _open_target
from e2e_support import COLOUR_HEADER, TRACEBACK, Project, Run, Target, make_project

__all__ = ["PLATFORMS", "TRACEBACK"]

PAUSE_TIMEOUT = 120.0  # seconds a bgci run may take to reach its checkpoint
BURST = 20  # requests in a burst through the live address
GATE_TIMEOUT = 120  # seconds a gate waits for the test before it lets the stage go on anyway

# Fast, still realistic settings for the shared apps (tests/helpers/images.py has the rest).
FAST = {"health.interval": 0.1, "health.successes": 2, "switch.drain": 1,
        "switch.confirm_requests": 10}


def grouped(name: str, kinds: tuple[str, ...] | None = None) -> list[Any]:
    """conftest's PLATFORMS (those of ``kinds``) as params of a module-scoped fixture, each
    platform's tests in one xdist group ``name-<platform>``: under ``pytest -n`` a module's tests
    for one platform then run in one worker, in order, sharing one app. (Swarm's tests are kept
    in the "swarm" group by tests/conftest.py: one worker makes and leaves the swarm.)"""
    params = []
    # (tests/e2e/e2e_swarm.py decides which of them run on swarm: BGCI_E2E_SWARM=all runs all)
    for param in PLATFORMS:
        kind = param.values[0]
        if kinds is not None and kind not in kinds:
            continue
        marks = list(param.marks)
        if kind != "swarm":
            marks.append(pytest.mark.xdist_group(f"{name}-{kind}"))
        params.append(pytest.param(*param.values, marks=marks, id=param.id))
    return params


# -- one app per platform for a whole module --------------------------------------------------
@dataclass
class SharedApp:
    """A project whose deployment outlives one test: tests bring it to what they need."""

    project: Project
    target: Target
    fresh_count: int = 0
    images: list[str] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    # `bgci status` as the last test that passed left it (saves a call; None: ask again)
    status: dict[str, Any] | None = None

    @property
    def p(self) -> Project:
        return self.project

    def fresh(self, base: str = "v1") -> str:
        """A release of ``base``'s code whose digest was never seen (never verified nor
        quarantined), for what ``deploy-green --image`` takes."""
        self.fresh_count += 1
        name = f"{self.project.app}-r{self.fresh_count}"
        if self.target.kind in ("docker", "swarm"):  # an image: the base plus one label
            client: Any = self.target.client  # type: ignore[attr-defined]
            ref = f"bgci-e2e-faults/{self.project.app}:r{self.fresh_count}"
            dockerfile = f"FROM {self.target.release(base)}\nLABEL org.bgci.test.fresh={name}\n"
            self.images.append(ref)
            client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True)
            return ref
        if self.target.kind == "process":  # a release dir: the base's sources, its venv, a new id
            source = Path(self.target.release(base))
            state_dir: Path = self.target.state_dir  # type: ignore[attr-defined]
            where = state_dir / "faults-fresh" / name
            self.dirs.append(where)
            shutil.copytree(source / "app", where / "app", symlinks=True)
            (where / "venv").symlink_to(source / "venv")
            info = json.loads((source / "release.json").read_text(encoding="utf-8"))
            info.update(id=name, digest="sha256:" + hashlib.sha256(name.encode()).hexdigest())
            (where / "release.json").write_text(json.dumps(info), encoding="utf-8")
            return str(where)
        raise AssertionError(f"no fresh releases for platform {self.target.kind!r} yet: add them "
                             "to tests/e2e/faults_support.py")

    def cleanup(self) -> None:
        for where in self.dirs:
            shutil.rmtree(where, ignore_errors=True)
        if self.images:
            import docker.errors

            client: Any = self.target.client  # type: ignore[attr-defined]
            for ref in self.images:
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(ref, force=True)


@contextlib.contextmanager
def shared_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               overrides: Mapping[str, Any] | None = None, **kw: Any) -> Iterator[SharedApp]:
    """A module's app on the platform ``request.param`` (one of conftest's PLATFORMS); everything
    of it, and the fresh images it made, removed afterwards."""
    target = _open_target(request.param, request)
    app: SharedApp | None = None
    try:
        root = tmp_path_factory.mktemp(f"faults-{request.param}")
        project = make_project(root / "project", target, {**FAST, **(overrides or {})}, **kw)
        app = SharedApp(project, target)
        yield app
    finally:
        try:
            target.cleanup()
        finally:
            if app is not None:
                app.cleanup()


# -- who serves live traffic ------------------------------------------------------------------
@dataclass
class Burst:
    statuses: list[int | None]
    colours: list[str | None]  # the X-Bgci-Color header: the colour the router meant to use
    versions: list[str | None]
    errors: list[str]
    served_by: list[str | None] = field(default_factory=list)  # the app's own BGCI_COLOR

    def __str__(self) -> str:
        seen: dict[str, int] = {}
        for status, colour, by in zip(self.statuses, self.colours, self.served_by, strict=True):
            key = f"{status} {colour}" + (f" (served by {by})" if by != colour else "")
            seen[key] = seen.get(key, 0) + 1
        return f"{seen} {self.errors[:3]}"

    def one_colour(self) -> str | None:
        """The colour every request was answered 200 by (header and app agreeing), else None."""
        if set(self.statuses) != {200} or len(set(self.colours)) != 1:
            return None
        colour = self.colours[0]
        return colour if set(self.served_by) == {colour} else None


def burst(url: str, count: int = BURST) -> Burst:
    """``count`` fresh GET ``url``/version, one connection each (what new users would see)."""
    out = Burst([], [], [], [])
    for _ in range(count):
        try:
            response = requests.get(f"{url}/version", timeout=10)
        except requests.RequestException as exc:
            out.statuses.append(None)
            out.colours.append(None)
            out.versions.append(None)
            out.served_by.append(None)
            out.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        out.statuses.append(response.status_code)
        out.colours.append(response.headers.get(COLOUR_HEADER))
        version = served_by = None
        if response.status_code == 200:
            with contextlib.suppress(ValueError):
                body = response.json()
                version, served_by = body.get("version"), body.get("color")
        out.versions.append(version)
        out.served_by.append(served_by)
    return out


def assert_one_healthy_colour(p: Project, expected: str | None = None) -> str:
    """A burst through the live address: every request 200, all from one colour (``expected``)."""
    got = burst(p.live_url)
    colour = got.one_colour()
    assert colour is not None, (
        f"live traffic at {p.live_url} is not on exactly one healthy colour: {got}")
    if expected is not None:
        assert colour == expected, f"live traffic is on {colour}, expected {expected}: {got}"
    return colour


def wait_live(p: Project, colour: str, timeout: float = 30.0) -> None:
    """Until a request through the live address is answered 200 by ``colour``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            response = requests.get(f"{p.live_url}/version", timeout=2)
            if response.status_code == 200 and response.headers.get(COLOUR_HEADER) == colour:
                return
        assert time.monotonic() < deadline, f"{colour} never answered through {p.live_url}"
        time.sleep(0.05)


# -- kill -9 at a checkpoint ------------------------------------------------------------------
@dataclass
class Killed:
    pid: int
    out: str
    err: str


def kill_at(p: Project, point: str, *args: str, env: Mapping[str, str] | None = None) -> Killed:
    """Run ``bgci ARGS`` until it reaches checkpoint ``point``, then ``kill -9`` it."""
    marker = p.root / f"pause-{point.replace(':', '-')}.pid"
    marker.unlink(missing_ok=True)
    proc = p.start(*args, env={**(env or {}), "BGCI_TEST_PAUSE_AT": point,
                               "BGCI_TEST_PAUSE_FILE": str(marker)})
    try:
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while not (marker.is_file() and marker.read_text().strip()):
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"`bgci {' '.join(args)}` exited {proc.returncode} before "
                                     f"checkpoint {point}:\n{out}\n{err}")
            assert time.monotonic() < deadline, f"bgci never reached checkpoint {point}"
            time.sleep(0.02)
        assert int(marker.read_text()) == proc.pid, "the checkpoint was reached by another process"
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"bgci exited {proc.returncode}, not by SIGKILL"
    return Killed(proc.pid, out, err)


def lock_broken_message(pid: int) -> str:
    """What a re-run logs when it breaks the lock of the killed process (bgci/state)."""
    return f"breaking the deploy lock of a process that is gone (pid {pid} on this host)"


# -- gates: a stage waits at a known place while the test injects a fault ----------------------
@dataclass
class Gate:
    """Two files: the stage creates ``ready`` and waits for ``go``, which the test creates."""

    ready: Path
    go: Path

    @classmethod
    def at(cls, where: Path, name: str) -> Gate:
        gate = cls(where / f"{name}.ready", where / f"{name}.go")
        gate.ready.unlink(missing_ok=True)
        gate.go.unlink(missing_ok=True)
        return gate

    def command(self) -> str:
        """A runner hook that opens the gate and waits (bounded) for the test."""
        ready, go = shlex.quote(str(self.ready)), shlex.quote(str(self.go))
        return (f"touch {ready}; i=0; while [ ! -e {go} ] && [ $i -lt {GATE_TIMEOUT * 20} ]; "
                "do sleep 0.05; i=$((i+1)); done")

    def env(self) -> dict[str, str]:
        """For the smoke-suite gate (``FAULTS_SMOKE``): where its files are."""
        return {"FAULTS_GATE_READY": str(self.ready), "FAULTS_GATE_GO": str(self.go)}

    def wait(self, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"bgci exited {proc.returncode} before its gate:\n{out}\n{err}")
            assert time.monotonic() < deadline, "the stage never reached its gate"
            time.sleep(0.02)

    def open(self) -> None:
        self.go.touch()


# A smoke suite of two tests: the first holds `verify` still, when the test sets FAULTS_GATE_*,
# until the test has broken green; the second checks health through the preview, quickly.
FAULTS_SMOKE = '''\
import os
import time
from pathlib import Path

import requests


def test_0_gate() -> None:
    ready, go = os.environ.get("FAULTS_GATE_READY"), os.environ.get("FAULTS_GATE_GO")
    if not ready or not go:
        return
    Path(ready).touch()
    deadline = time.monotonic() + 120
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_1_healthz_through_the_preview() -> None:
    response = requests.get(os.environ["BGCI_TARGET_URL"] + "/healthz", timeout=3)
    assert response.status_code == 200, response.text
'''


def write_faults_smoke(root: Path) -> str:
    """The gated smoke suite in ``root``; returns its path for ``verify.smoke``."""
    (root / "faults_smoke").mkdir(exist_ok=True)
    (root / "faults_smoke" / "test_faults_smoke.py").write_text(FAULTS_SMOKE, encoding="utf-8")
    return "faults_smoke"


@contextlib.contextmanager
def background(p: Project, *args: str,
               env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """``bgci ARGS`` in the background in a process group of its own; if the block leaves it
    running (a failed assertion), the group (bgci and its hooks) is killed."""
    proc = p.start(*args, env=env, new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def read_until(proc: subprocess.Popen[str], text: str) -> str:
    """Read the background bgci's stderr line by line until one contains ``text`` (what the
    stage logs at the step the test waits for); returns what was read, for :func:`finish`."""
    assert proc.stderr is not None
    seen: list[str] = []
    while True:
        line = proc.stderr.readline()
        seen.append(line)
        if text in line:
            return "".join(seen)
        if not line:
            out, err = proc.communicate()
            raise AssertionError(f"bgci exited {proc.returncode} without logging {text!r}:\n"
                                 f"{out}\n{''.join(seen)}{err}")


def finish(proc: subprocess.Popen[str], timeout: float = 240.0, *, err_so_far: str = "") -> Run:
    """Wait for a background bgci (see ``Project.start``) and return it as a Run."""
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"bgci pid {proc.pid} did not finish within {timeout:.0f}s:\n"
                             f"{out}\n{err_so_far}{err}") from None
    args = tuple(str(a) for a in proc.args[1:]) if isinstance(proc.args, list) else ()
    return Run(args, proc.returncode, out, err_so_far + err, time.monotonic() - started, proc.pid)


# -- a deploy lock taken on another host ---------------------------------------------------------
REMOTE_HOLDER = "ci@elsewhere pid 4242"


def take_lock_elsewhere(p: Project, age: float) -> None:
    """The app's deploy lock as a bgci on another host (``host=elsewhere``, pid 4242) would have
    taken it ``age`` seconds ago, written through the platform's own state store (docker: the lock
    container with its labels; process: lock.json; swarm: the lock config)."""
    import uuid

    from bgci.config import load_config
    from bgci.ports import LockInfo
    from bgci.registry import open_site

    config = load_config(str(p.root / "bgci.toml"), cwd=p.root, environ={})
    site = open_site(config)
    try:
        info = LockInfo(holder=REMOTE_HOLDER, job_url="https://ci.example/job/7", since=time.time() - age,
                        token=uuid.uuid4().hex, host="elsewhere", pid=4242)
        assert site.store.try_lock(info) is None, "the lock was not free"
    finally:
        site.close()


# -- faults done to a colour or the router, through the platform ------------------------------
def _container(p: Project, name: str) -> Any:
    client: Any = p.target.client  # type: ignore[attr-defined]
    return client.containers.get(name)


def _colour_record(p: Project, colour: str) -> Any:
    from bgci import detached

    state_dir: Path = p.target.state_dir  # type: ignore[attr-defined]
    record = detached.read_record(state_dir / p.app / "colours" / colour / "process.json")
    assert record is not None, f"{colour} of {p.app} has no pidfile"
    return record


def crash_colour(p: Project, colour: str, *, if_running: bool = False) -> None:
    """The colour's instance dies and stays dead: `docker kill` (a restart policy does not apply
    to it), or SIGKILL to the colour's process group on the process platform. With
    ``if_running``, a colour that has no instance (never deployed, or removed) is left as is."""
    if p.target.kind == "docker":
        try:
            container = _container(p, f"{p.app}-{colour}")
        except docker.errors.NotFound:
            if if_running:
                return
            raise
        if if_running and container.status != "running":
            return
        container.kill()
    elif p.target.kind == "process":
        state_dir: Path = p.target.state_dir  # type: ignore[attr-defined]
        if if_running and not (state_dir / p.app / "colours" / colour / "process.json").exists():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_colour_record(p, colour).pid, signal.SIGKILL)  # the colour's own group
    else:
        raise AssertionError(f"no crash fault for platform {p.target.kind!r} yet")


def make_unhealthy(p: Project, colour: str, release: str) -> None:
    """The colour keeps running but its /healthz answers 503: the example app's ``UNHEALTHY``
    file, created in the container, or in ``release`` (a release dir only this colour runs)."""
    if p.target.kind == "docker":
        result = _container(p, f"{p.app}-{colour}").exec_run(["touch", "/app/UNHEALTHY"], user="0")
        assert result.exit_code == 0, result.output
    elif p.target.kind == "process":
        (Path(release) / "app" / "UNHEALTHY").touch()
    else:
        raise AssertionError(f"no health fault for platform {p.target.kind!r} yet")


def break_colour(p: Project, colour: str, kind: str, release: str) -> None:
    if kind == "crash":
        crash_colour(p, colour)
    elif kind == "unhealthy":
        make_unhealthy(p, colour, release)
    else:
        raise AssertionError(f"unknown fault {kind!r}")


def router_name(p: Project) -> str:
    return f"bgci-{p.app}-router"


def _router_record(p: Project) -> Any:
    from bgci import detached

    state_dir: Path = p.target.state_dir  # type: ignore[attr-defined]
    pidfile = state_dir / p.app / "router" / f"{router_name(p)}.pid"
    record = detached.read_record(pidfile)
    assert record is not None, f"the managed router of {p.app} has no pidfile {pidfile}"
    return record


def stop_router(p: Project) -> None:
    """Stop the managed router as an operator (or `bgci down`) would: its files stay."""
    if p.target.kind == "docker":
        _container(p, router_name(p)).stop(timeout=5)
    elif p.target.kind == "process":
        from bgci import detached

        detached.terminate(_router_record(p), 5.0)
    else:
        raise AssertionError(f"cannot stop the router on platform {p.target.kind!r} yet")


def restart_router(p: Project) -> None:
    """Restart the managed router through the engine (returns once it runs again)."""
    assert p.target.kind == "docker", f"no router restart on platform {p.target.kind!r}"
    _container(p, router_name(p)).restart(timeout=5)


def crash_router(p: Project) -> None:
    """SIGKILL the router's own process (docker: the container's main process, so the restart
    policy applies, as for a real crash; process platform: its process group)."""
    if p.target.kind == "docker":
        container = _container(p, router_name(p))
        container.reload()
        pid = int(container.attrs["State"]["Pid"] or 0)
        assert pid > 0 and container.status == "running", f"router not running: {container.status}"
        os.kill(pid, signal.SIGKILL)
    elif p.target.kind == "process":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_router_record(p).pid, signal.SIGKILL)
    else:
        raise AssertionError(f"cannot crash the router on platform {p.target.kind!r} yet")
