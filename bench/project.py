"""A bgci project as a user has one (a directory with ``bgci.toml``) and the real CLI run in it.

Every call is timed from outside (wall time, as a CI step pays it) and from inside through
``BGCI_TIMINGS`` (time spent waiting on the app, the engine or the router, and the moment a switch
or rollback told the router), and its JSON report is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.infra import CACHE, EXAMPLE_APP, Resources, test_env

STAGE_TIMEOUT = 300.0
STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "down", "status")
# what could make bgci think it runs in a CI, or change its options behind the benchmark's back
_STRIP = ("BGCI_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "RUNNER_")
IMAGE_REPO = "bgci-bench/flask-demo"
VERSIONS = {"v1": "1.0.0", "v2": "2.0.0"}
# the example app's own process command (examples/flask-app/bgci.process.toml)
PROCESS_COMMAND = ("gunicorn app:app --bind 127.0.0.1:{port} --workers 2 --worker-class gthread "
                   "--threads 4 --graceful-timeout 4 --timeout 30")


def bgci_argv() -> list[str]:
    script = Path(sys.executable).with_name("bgci")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bgci"]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP) and k != "CI"}
    env.update(extra or {})
    return env


def pip_env() -> dict[str, str]:
    """Offline release builds from the test wheelhouse when it fits this Python, else PyPI."""
    wheels = CACHE / "wheels"
    if sys.version_info[:2] == (3, 11) and any(wheels.glob("flask-*.whl")):
        return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    return {}


def to_toml(config: dict[str, Any]) -> str:
    """The small TOML the benchmark's configs need: scalars, tables, inline tables."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    lines = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for name, table in config.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]", *(f"{k} = {value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


@dataclass
class Call:
    """One finished ``bgci`` process, timed from outside and from inside."""

    stage: str
    args: list[str]
    code: int
    start: float
    end: float
    output: str
    report: dict[str, Any] | None
    waits: dict[str, float] = field(default_factory=dict)  # on (app, engine, router...) -> seconds
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def overhead(self) -> float:
        """Wall time minus every wait: what bgci itself costs (interpreter, imports, its logic)."""
        return self.wall - sum(self.waits.values())

    @property
    def checks_seconds(self) -> float:
        return sum(float(c.get("seconds") or 0) for c in (self.report or {}).get("checks", []))

    def summary(self) -> dict[str, Any]:
        return {"stage": self.stage, "code": self.code, "wall_s": round(self.wall, 3),
                "waits_s": {k: round(v, 3) for k, v in sorted(self.waits.items())},
                "checks_s": round(self.checks_seconds, 3), "overhead_s": round(self.overhead, 3)}


class BgciFailed(RuntimeError):
    pass


class Project:
    """A directory with a ``bgci.toml``; :meth:`bgci` runs the real CLI there."""

    def __init__(self, root: Path, config: dict[str, Any], res: Resources,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.app = str(config["app"])
        self.config = config
        self.res = res
        self.env = clean_env({"BGCI_CONFIG": str(root / "bgci.toml"), **pip_env(), **(env or {})})
        self.calls: list[Call] = []
        root.mkdir(parents=True, exist_ok=True)
        (root / "bgci.toml").write_text(to_toml(config), encoding="utf-8")
        router = config.get("router", {})
        self.live_url = f"http://{router.get('listen', '')}"
        self.preview_url = f"http://{router.get('preview', '')}"

    def bgci(self, *args: str, check: bool = True, timeout: float = STAGE_TIMEOUT,
             options: tuple[str, ...] = ()) -> Call:
        """``bgci [options] ARGS`` (global ``options`` such as ``--set KEY=VALUE`` go first)."""
        n = len(self.calls)
        stage = next((a for a in args if not a.startswith("-")), "")
        reports = self.root / "reports" / f"{n:03d}-{stage}"
        timings = self.root / "timings" / f"{n:03d}.jsonl"
        timings.parent.mkdir(parents=True, exist_ok=True)
        argv = [*bgci_argv(), "--reports", str(reports), *options, *args]
        started = time.time()
        proc = subprocess.run(argv, cwd=self.root, env={**self.env, "BGCI_TIMINGS": str(timings)},
                              capture_output=True, text=True, timeout=timeout, check=False)
        ended = time.time()
        report = None
        if (reports / f"{stage}.json").exists():
            report = json.loads((reports / f"{stage}.json").read_text(encoding="utf-8"))
        call = Call(stage, list(args), proc.returncode, started, ended,
                    (proc.stdout + proc.stderr)[-3000:], report)
        if timings.exists():
            for line in timings.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if "mark" in entry:
                    call.marks[entry["mark"]] = float(entry["at"])
                else:
                    call.waits[entry["on"]] = call.waits.get(entry["on"], 0.0) + float(entry["seconds"])
        self.calls.append(call)
        if check and proc.returncode != 0:
            raise BgciFailed(f"{self.app}: `bgci {' '.join(args)}` exited {proc.returncode}:\n"
                             f"{call.output[-1500:]}")
        return call

    def down(self) -> None:
        """`bgci down`, then whatever bgci made on the engine for this app (state, lock, network)."""
        try:
            self.bgci("down", check=False, timeout=120)
        finally:
            if self.config.get("platform", {}).get("kind") in ("docker", "swarm") and \
                    self.res.client is not None:
                remove_docker_app(self.res.client, self.app)


def remove_docker_app(client: Any, app: str) -> None:
    """What bgci made on the engine or the swarm for ``app`` and `bgci down` keeps (the state, the
    lock, the scaled-down router service, its volume, the network): found by label or exact name."""
    import docker.errors

    from bgci.swarm_engine import REAP_WAIT, wait_reaped

    label = {"label": f"org.bgci.app={app}"}
    services = client.services.list(filters=label) if _swarm_manager(client) else []
    names = {s.name for s in services}
    for service in services:
        # not while Swarm deletes the tasks `bgci down` scaled down (bgci/swarm_engine.py)
        wait_reaped(client, service, time.monotonic() + REAP_WAIT)
        with contextlib.suppress(docker.errors.NotFound):
            service.remove()
    # the low-level list: containers.list() inspects each one, racing other processes' removals
    for container in client.api.containers(all=True):
        labels = container.get("Labels") or {}
        if labels.get("org.bgci.app") == app or labels.get("com.docker.swarm.service.name") in names:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_container(container["Id"], force=True, v=True)
    if services or _swarm_manager(client):
        for config in client.configs.list(filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                config.remove()
    for volume in client.volumes.list():
        if volume.name in (f"bgci-{app}-state", f"bgci-{app}-router") or \
                (volume.attrs.get("Labels") or {}).get("org.bgci.app") == app:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                volume.remove(force=True)
    deadline = time.monotonic() + 30  # an overlay network is refused while task endpoints linger
    while True:
        left = [n for n in client.networks.list(names=[f"bgci-{app}"]) if n.name == f"bgci-{app}"]
        for network in left:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)


def _swarm_manager(client: Any) -> bool:
    swarm = client.info().get("Swarm") or {}
    return bool(swarm.get("LocalNodeState") == "active" and swarm.get("ControlAvailable"))


def app_copy(dest: Path, version: str, wheels: bool) -> Path:
    """examples/flask-app in ``dest`` with ``VERSION`` set (and the wheelhouse as wheels/)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "bgci-reports",
                                    "wheels", "UNHEALTHY", "bgci*.toml")
    shutil.copytree(EXAMPLE_APP, dest, ignore=ignore, dirs_exist_ok=True)
    (dest / "VERSION").write_text(version + "\n", encoding="utf-8")
    if wheels:
        target = dest / "wheels"
        target.mkdir(exist_ok=True)
        for wheel in sorted(Path(test_env().get("BGCI_TEST_WHEELS", CACHE / "wheels")).glob("*.whl")):
            shutil.copy2(wheel, target / wheel.name)
    return dest


def docker_build_config(app: str) -> dict[str, Any]:
    facts = test_env()
    return {
        "app": app,
        "build": {"context": "app", "image": IMAGE_REPO, "build_args": {
            "BASE_IMAGE": facts.get("BGCI_TEST_BASE_IMAGE", "python:3.12-slim"),
            "PIP_ARGS": "--no-index --find-links /app/wheels"}},
        "platform": {"kind": "docker", "port": 8000},
    }


def build_docker_images(work: Path, res: Resources, app: str) -> tuple[dict[str, str], list[Call]]:
    """`bgci build` of v1 and v2 (the same app, VERSION changed): image refs and the calls."""
    project = Project(work / "build-docker", docker_build_config(app), res)
    refs = {}
    for tag, version in VERSIONS.items():
        app_copy(project.root / "app", version, wheels=True)
        call = project.bgci("build", "--tag", tag, timeout=900)
        refs[tag] = str(call.report["image"] if call.report else f"{IMAGE_REPO}:{tag}")
    return refs, project.calls


def build_process_releases(work: Path, res: Resources, app: str,
                           state_dir: Path) -> tuple[dict[str, str], list[Call]]:
    """`bgci build` of v1 and v2 as process-platform releases: their directories and the calls."""
    config = {"app": app, "build": {"context": "app"},
              "platform": {"kind": "process", "command": PROCESS_COMMAND,
                                       "state_dir": str(state_dir)}}
    project = Project(work / "build-process", config, res)
    releases = {}
    for tag, version in VERSIONS.items():
        app_copy(project.root / "app", version, wheels=False)
        project.bgci("build", "--tag", tag, timeout=900)
        releases[tag] = str(state_dir / app / "releases" / tag)
    return releases, project.calls
