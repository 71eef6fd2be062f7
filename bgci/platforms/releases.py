"""Releases of the process platform: the app's sources and a virtualenv, one directory per id.

``releases/<id>/app``           a copy of ``build.context`` without what ``ignore.py`` rules out
                                (VCS dirs, caches, virtualenvs, bgci's dirs, the ``.dockerignore``)
``releases/<id>/venv``          a virtualenv: the app's ``requirements.txt``, and the project itself
                                when it has a ``pyproject.toml`` or ``setup.py``, installed by pip
                                (``PIP_*`` from the environment apply: ``PIP_NO_INDEX=1
                                PIP_FIND_LINKS=DIR`` builds offline)
``releases/<id>/release.json``  id, digest and what went in; written last, so a directory without
                                it is an interrupted build, rebuilt by the next ``bgci build``

The digest is a sha256 over the sources and the installed distributions (name==version): the same
code with the same pinned requirements gives the same digest, wherever it is built.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bgci.atomic import write_atomic
from bgci.errors import CheckFailed, ConfigError, InfraError
from bgci.log import Log
from bgci.platforms.ignore import Rule
from bgci.timings import waits_on

RELEASE_FILE = "release.json"
DIGEST_VERSION = "bgci-release-1"
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")


@dataclass(frozen=True)
class ReleaseInfo:
    """What ``release.json`` records about one built release."""

    id: str
    digest: str
    sources: str  # sha256 of the copied sources alone
    installed: list[str]  # name==version of every distribution in the venv
    python: str
    built_at: float
    labels: dict[str, str] = field(default_factory=dict)  # the git revision, dirty or not

    @classmethod
    def load(cls, directory: Path) -> ReleaseInfo | None:
        try:
            data = json.loads((directory / RELEASE_FILE).read_text(encoding="utf-8"))
            labels = data.get("labels") if isinstance(data.get("labels"), dict) else {}
            return cls(str(data["id"]), str(data["digest"]), str(data["sources"]),
                       [str(x) for x in data["installed"]], str(data["python"]),
                       float(data["built_at"]), {str(k): str(v) for k, v in labels.items()})
        except (OSError, ValueError, KeyError, TypeError):
            return None


def check_id(release_id: str) -> str:
    """``release_id`` if it can name a directory safely (ConfigError otherwise)."""
    if not _ID.match(release_id) or release_id in (".", ".."):
        raise ConfigError(f"release id {release_id!r} cannot name a release directory",
                          "use letters, digits and ._+- (the git SHA or --tag)")
    return release_id


def venv_python(release_dir: Path) -> Path:
    return release_dir / "venv" / "bin" / "python"


def sources_digest(root: Path, excluded: set[Path] | None = None) -> str:
    """sha256 over the relative path, executable bit and content (or link target) of each file."""
    digest = hashlib.sha256()
    for path in Rule.of(root, excluded).walk():
        rel = path.relative_to(root).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            body = b"link:" + os.readlink(path).encode()
        else:
            body = hashlib.sha256(path.read_bytes()).hexdigest().encode()
        executable = b"x" if info.st_mode & 0o111 and not stat.S_ISLNK(info.st_mode) else b"-"
        digest.update(rel.encode() + b"\0" + executable + b"\0" + body + b"\n")
    return digest.hexdigest()


def copy_sources(src: Path, dest: Path, excluded: set[Path]) -> None:
    """Copy what :func:`sources_digest` hashes from ``src`` into ``dest`` (symlinks as links)."""
    for path in Rule.of(src, excluded).walk():
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), target)
        else:
            shutil.copy2(path, target)


def installed_set(venv: Path) -> list[str]:
    """``name==version`` of every distribution installed in ``venv``, sorted."""
    found = set()
    for site in sorted(venv.glob("lib/python*/site-packages")):
        for dist in importlib.metadata.distributions(path=[str(site)]):
            name = re.sub(r"[-_.]+", "-", str(dist.metadata["Name"] or "")).lower()
            if name:
                found.add(f"{name}=={dist.version}")
    return sorted(found)


def release_digest(sources: str, installed: list[str]) -> str:
    text = "\n".join([DIGEST_VERSION, f"sources {sources}", *installed])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def _build_lock(releases: Path) -> Iterator[None]:
    """One build at a time per state dir (two pipelines building the same id would collide)."""
    releases.mkdir(parents=True, exist_ok=True)
    fd = os.open(releases / ".build.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def build_release(releases: Path, release_id: str, context: Path, *, excluded: set[Path],
                  in_use: Callable[[str], str | None], log: Log,
                  labels: Mapping[str, str] | None = None) -> ReleaseInfo:
    """Build ``releases/<release_id>`` from ``context`` (reused when its sources are unchanged).

    ``in_use(id)`` names the colour that runs that release, if any: a release that runs is never
    replaced under it (ConfigError instead).
    """
    check_id(release_id)
    if not context.is_dir():
        raise ConfigError(f"build.context {str(context)!r} is not a directory")
    with _build_lock(releases):
        target = releases / release_id
        sources = sources_digest(context, excluded)
        existing = ReleaseInfo.load(target)
        if existing and existing.sources == sources and venv_python(target).exists():
            log.info(f"release {release_id} is already built from these sources")
            return existing
        if target.exists():
            user = in_use(release_id)
            if user:
                raise ConfigError(
                    f"release {release_id} already exists, built from other sources, and runs on {user}",
                    "build with another --tag (the default, the git SHA, changes with every commit)",
                )
            why = "other sources" if existing else "an interrupted build"
            log.info(f"replacing release {release_id} ({why})")
            shutil.rmtree(target)
        started = time.monotonic()
        try:
            info = _build(target, release_id, context, excluded, log, dict(labels or {}))
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        log.info(f"release {release_id} built in {time.monotonic() - started:.1f}s: "
                 f"{len(info.installed)} distributions, {info.digest}")
        return info


def _build(target: Path, release_id: str, context: Path, excluded: set[Path], log: Log,
           labels: dict[str, str]) -> ReleaseInfo:
    app, venv = target / "app", target / "venv"
    log.info(f"copying {context} into {app}")
    copy_sources(context, app, excluded)
    sources = sources_digest(app)
    host_pip = _host_pip()
    log.info(f"creating the virtualenv {venv}")
    _run([sys.executable, "-m", "venv", *(["--without-pip"] if host_pip else []), str(venv)],
         app, log, "python -m venv")
    pip = [*host_pip, "--python", str(venv_python(target))] if host_pip else [
        str(venv_python(target)), "-m", "pip"]
    install = [*pip, "install", "--disable-pip-version-check", "--no-input"]
    if (app / "requirements.txt").is_file():
        log.info("pip install -r requirements.txt")
        _run([*install, "-r", "requirements.txt"], app, log, "pip install -r requirements.txt")
    if (app / "pyproject.toml").is_file() or (app / "setup.py").is_file():
        log.info("pip install . (the project itself)")
        _run([*install, "."], app, log, "pip install .")
    installed = installed_set(venv)
    info = ReleaseInfo(id=release_id, digest=release_digest(sources, installed), sources=sources,
                       installed=installed, python=".".join(map(str, sys.version_info[:3])),
                       built_at=time.time(), labels=labels)
    write_atomic(target / RELEASE_FILE, json.dumps(asdict(info), indent=1).encode())
    return info


def _host_pip() -> list[str] | None:
    """bgci's own pip when it can install into another interpreter (``--python``, pip >= 22.3).

    Then the release's venv needs no pip of its own, which saves seconds per build.
    """
    try:
        version = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = re.findall(r"\d+", version)[:2]
    if len(parts) < 2 or (int(parts[0]), int(parts[1])) < (22, 3):
        return None
    return [sys.executable, "-m", "pip"]


@waits_on("tooling")
def _run(argv: list[str], cwd: Path, log: Log, what: str) -> None:
    """``argv``, its output streamed to the log line by line (a long pip install shows where it
    is); CheckFailed with its last lines when it fails."""
    tail: list[str] = []
    try:
        with subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, errors="replace") as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip():
                    log.info(line.rstrip())
                    tail = [*tail[-19:], line.rstrip()]
            code = proc.wait()
    except OSError as exc:
        raise InfraError(f"{what} could not run: {exc}") from exc
    if code != 0:
        last = "\n".join(tail)
        raise CheckFailed(f"{what} failed (exit {code}):\n{last}",
                          "PIP_INDEX_URL, PIP_FIND_LINKS and PIP_NO_INDEX from the environment apply")
