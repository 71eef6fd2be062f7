"""What the CI-integration tests share: finding the CI tools, a throw-away git repository that
holds bgci, its wrappers and a copy of the example app, running a tool with a clean environment,
and removing everything an app left on the Docker engine.

Plain code, no fixtures (those are in ``conftest.py``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.images import make_app_copy, test_env
from tests.helpers.ports import fresh_port

REPO = Path(__file__).resolve().parents[2]
SETUP_HINT = "run `bash scripts/test-env.sh` as root first (it installs the CI tools and images)"
CACHE = Path(os.environ.get("BGCI_CACHE", "/var/cache/bgci"))
# Where scripts/test-env.sh installs the CI tools: node's and the Python ones' own directories.
TOOL_DIRS = (CACHE / "node" / "node_modules" / ".bin", CACHE / "tools" / "bin")
# The Groovy harness wants Java 17 (Debian's groovy 2.4 does not run on every newer Java).
JAVA_HOME = next(iter(sorted(Path("/usr/lib/jvm").glob("java-17-openjdk-*"))),
                 Path("/usr/lib/jvm/java-17-openjdk-amd64"))
# No hsperfdata files in /tmp, and a quicker start for the short-lived Groovy runs.
JAVA_ENV = {"JAVA_HOME": str(JAVA_HOME), "JAVA_OPTS": "-XX:-UsePerfData -XX:TieredStopAtLevel=1"}
STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire", "deploy")
# What the example app runs as on the process platform (examples/flask-app/bgci.process.toml).
PROCESS_COMMAND = ("gunicorn app:app --bind 127.0.0.1:{port} --workers 2 --worker-class gthread "
                   "--threads 4 --graceful-timeout 4 --timeout 30")

# What the wrappers need from bgci's checkout (the action installs bgci from its own directory;
# templates/ is the GitLab CI/CD component).
_SOURCE = ("pyproject.toml", "README.md", "action.yml", "bgci", "ci-templates", "templates")
# Variables that would make bgci (or a tool) believe it runs inside some CI already.
_STRIP_PREFIXES = ("BGCI_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "RUNNER_", "PYTEST_", "ACT")
_STRIP_NAMES = {"CI", "BUILD_URL", "BUILD_NUMBER", "JOB_NAME", "JOB_URL", "HUDSON_URL",
                "JENKINS_URL", "WORKSPACE"}


def tool(name: str) -> str:
    """The path of a CI tool; fails the test (never skips) with the fix when it is missing."""
    found = next((str(d / name) for d in TOOL_DIRS if (d / name).is_file()), None)
    found = found or shutil.which(name)
    if name == "groovy" and found and not (JAVA_HOME / "bin" / "java").is_file():
        found = None
    if not found:
        pytest.fail(f"{name} is not installed: {SETUP_HINT}", pytrace=False)
    return found


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CI or BGCI_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES}
    # pip keeps using the machine's download cache even where a tool moves XDG_CACHE_HOME.
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.update(extra or {})
    return env


@dataclass
class Ran:
    argv: list[str]
    returncode: int
    output: str
    seconds: float

    def tail(self, lines: int = 120) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = 300,
        log: Path | None = None) -> Ran:
    """Run a tool to the end (stdout and stderr together); kill its process group on timeout."""
    started = time.monotonic()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        text = out.decode("utf-8", "replace")
        pytest.fail(f"{argv[0]} did not finish within {timeout:.0f}s:\n{text[-6000:]}")
    text = out.decode("utf-8", "replace")
    if log is not None:
        log.write_text(text, encoding="utf-8")
    return Ran(list(argv), proc.returncode, text, time.monotonic() - started)


def unique_app(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class AppRepo:
    """A git repository with bgci's source and wrappers at its root and the example app in app/."""

    root: Path
    app: str
    listen: str
    preview: str
    app_path: str = "app"  # "": the app is the repository's root

    @property
    def app_dir(self) -> Path:
        return self.root / self.app_path

    @property
    def live_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def preview_url(self) -> str:
        return f"http://{self.preview}"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def commit(self, message: str = "test") -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--no-verify", "-m", message)


def git(cwd: Path, *args: str) -> str:
    env = clean_env({"GIT_AUTHOR_NAME": "bgci tests", "GIT_AUTHOR_EMAIL": "tests@bgci.invalid",
                     "GIT_COMMITTER_NAME": "bgci tests",
                     "GIT_COMMITTER_EMAIL": "tests@bgci.invalid"})
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def make_repo(dest: Path, app: str, *, version: str = "1.0.0",
              overrides: Mapping[str, Any] | None = None, with_app: bool = True) -> AppRepo:
    """``dest`` as a committed git repository: bgci's checkout (source, action.yml, templates)
    and, unless ``with_app`` is false, the example app in ``app/`` configured for the local
    test images, free ports and fast health checks."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in _SOURCE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    (dest / ".gitignore").write_text("bgci-reports/\n.gitlab-ci-local/\n", encoding="utf-8")
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    while preview == listen:
        preview = f"127.0.0.1:{fresh_port()}"
    if with_app:
        config = {"app": app, "router": {"listen": listen, "preview": preview},
                  "health": {"interval": 0.2, "successes": 2},
                  "switch": {"drain": 0.5, "confirm_requests": 5}}
        config.update(overrides or {})
        make_app_copy(dest / "app", version, config)
    git(dest, "init", "-q", "-b", "main")
    repo = AppRepo(dest, app, listen, preview)
    repo.commit("bgci and the example app")
    return repo


def make_defaults_repo(dest: Path, app: str, state: Path) -> AppRepo:
    """A repository laid out as a team's, on the embedded default: the example app at the root
    (the build context, where the GitLab and Jenkins wrappers' default virtualenv and the reports
    dir land too) on the process platform behind a managed Traefik, its state in ``state``; bgci's
    checkout in ``bgci-src/`` (the action, and what pip installs) and the CI/CD component in
    ``templates/``. Its .dockerignore lists those two and the wheelhouse: a release is the app.
    Release builds find the example's pinned requirements in ``wheels/`` (PIP_FIND_LINKS)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in _SOURCE:
        source, target = REPO / name, dest / "bgci-src" / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shutil.copytree(REPO / "templates", dest / "templates")
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    while preview == listen:
        preview = f"127.0.0.1:{fresh_port()}"
    make_app_copy(dest, "1.0.0", {
        "app": app,
        "platform": {"kind": "process", "command": PROCESS_COMMAND, "state_dir": str(state),
                     "port": None},
        "router": {"kind": "traefik", "image": None, "listen": listen, "preview": preview},
        "build": {"build_args": None},
        "health": {"interval": 0.2, "successes": 2},
        "switch": {"drain": 0.5, "confirm_requests": 5},
    })
    with (dest / ".dockerignore").open("a", encoding="utf-8") as ignored:
        ignored.write("bgci-src\ntemplates\nwheels\n")
    (dest / ".gitignore").write_text(
        "bgci-reports/\n.gitlab-ci-local/\n.bgci-venv/\nbgci-src/build/\n*.egg-info/\n",
        encoding="utf-8")
    git(dest, "init", "-q", "-b", "main")
    repo = AppRepo(dest, app, listen, preview, app_path="")
    repo.commit("the app, bgci and its wrappers")
    return repo


def release_files(state: Path, app: str, release: str) -> list[str]:
    """The files of a process-platform release's copy of the app, relative to it."""
    root = state / app / "releases" / release / "app"
    assert root.is_dir(), f"no release {release} in {state / app / 'releases'}"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def router_pid(state: Path, app: str) -> int | None:
    """The pid of the app's managed router on the process platform (None: none recorded)."""
    try:
        record = json.loads((state / app / "router" / f"bgci-{app}-router.pid").read_text())
    except FileNotFoundError:
        return None
    return int(record["pid"])


def processes_naming(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (what bgci started from a state dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def stop_process_app(repo: AppRepo, state: Path, reports: Path) -> list[str]:
    """``bgci down`` for a process-platform app (both colours and the router stop), then whatever
    still names its state dir is killed by pid; returns what had to be killed."""
    run([sys.executable, "-m", "bgci", "--config", str(repo.app_dir / "bgci.toml"),
         "--reports", str(reports), "down"], cwd=repo.app_dir, env=clean_env(), timeout=120)
    left = processes_naming(state)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [f"pid {pid}" for pid in left]


def pip_find_links() -> str:
    """The wheelhouse of the example app's pinned requirements (scripts/test-env.sh)."""
    return test_env()["BGCI_TEST_WHEELS"]


# A stand-in for bgci where the point is the command line: it logs its argv (and a few variables)
# as a JSON line to $FAKE_BGCI_LOG, writes the reports a stage writes and exits $FAKE_BGCI_EXIT.
FAKE_BGCI = """\
import json, os, sys

STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire", "deploy")


def main():
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print("bgci, version 0 (fake)")
        return 0
    with open(os.environ["FAKE_BGCI_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "cwd": os.getcwd(),
                              "notify": os.environ.get("BGCI_NOTIFY_URL"),
                              "extra": os.environ.get("EXTRA")}) + "\\n")
    reports = argv[argv.index("--reports") + 1] if "--reports" in argv else "bgci-reports"
    stage = next(a for a in argv if a in STAGES)
    os.makedirs(reports, exist_ok=True)
    for name in (STAGES[:4] if stage == "deploy" else (stage,)):
        with open(os.path.join(reports, name + ".xml"), "w") as f:
            f.write('<testsuites><testsuite name="bgci.%s" tests="1"><testcase name="x"/>'
                    '</testsuite></testsuites>' % name)
    with open(os.path.join(reports, "bgci.env"), "w") as f:
        f.write("BGCI_LIVE_COLOR=green\\nBGCI_IMAGE=shop:v2\\n")
    return int(os.environ.get("FAKE_BGCI_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
"""


def write_fake_bgci(path: Path) -> Path:
    """The fake bgci as one executable file (for wrappers that take the bgci executable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{FAKE_BGCI}")
    path.chmod(0o755)
    return path


def make_fake_bgci_wheel(dest: Path) -> Path:
    """The fake bgci as a wheel in ``dest`` (for wrappers that install bgci themselves): a local
    wheel installs in a second, where a source tree would first be built."""
    dest.mkdir(parents=True, exist_ok=True)
    dist = "fake_bgci-0.dist-info"
    files = {
        "fake_bgci.py": FAKE_BGCI,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: fake-bgci\nVersion: 0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: bgci-tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\nbgci = fake_bgci:main\n",
    }
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = dest / "fake_bgci-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fake_calls(log: Path) -> list[dict[str, Any]]:
    """What the fake bgci was called with, in order."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def junit_suite(path: Path) -> ET.Element:
    """The single ``<testsuite>`` of a bgci JUnit report."""
    root = ET.parse(path).getroot()
    suites = list(root.iter("testsuite"))
    assert len(suites) == 1, f"{path}: expected one testsuite, found {len(suites)}"
    return suites[0]


def assert_junit(reports: Path, stages: Sequence[str]) -> None:
    """Each stage left ``<stage>.xml`` with suite ``bgci.<stage>`` and no failure or error."""
    for stage in stages:
        path = reports / f"{stage}.xml"
        assert path.is_file(), f"no JUnit report {path}; found {sorted(p.name for p in reports.glob('*'))}"
        suite = junit_suite(path)
        assert suite.get("name") == f"bgci.{stage}"
        assert int(suite.get("failures", "0")) == 0 and int(suite.get("errors", "0")) == 0, \
            ET.tostring(suite, encoding="unicode")[:3000]
        assert list(suite.iter("testcase")), f"{path} has no testcase"


def remove_app(client: Any, app: str) -> list[str]:
    """Remove every container, network, volume and image of ``app`` from the engine; return what
    could not be removed."""
    import docker.errors

    label = f"org.bgci.app={app}"
    left: list[str] = []
    names = {f"{app}-blue", f"{app}-green", f"bgci-{app}-router", f"bgci-{app}-state",
             f"bgci-{app}-lock"}
    containers = {c.id: c for c in client.containers.list(all=True, filters={"label": label})}
    for name in names:
        try:
            container = client.containers.get(name)
            containers[container.id] = container
        except docker.errors.NotFound:
            pass
    for container in containers.values():
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            left.append(f"container {container.name}: {exc}")
    for network in client.networks.list(names=[f"bgci-{app}"]):
        try:
            network.remove()
        except docker.errors.APIError as exc:
            left.append(f"network {network.name}: {exc}")
    for volume in client.volumes.list(filters={"label": label}) + _volume(client, f"bgci-{app}-state"):
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            left.append(f"volume {volume.name}: {exc}")
    images = client.images.list(filters={"label": label}) + client.images.list(name=app)
    for image in {image.id: image for image in images}.values():
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            left.append(f"image {image.tags or image.id}: {exc}")
    return left


def _volume(client: Any, name: str) -> list[Any]:
    import docker.errors

    try:
        return [client.volumes.get(name)]
    except docker.errors.NotFound:
        return []
