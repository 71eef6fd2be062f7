"""`bgci build`: the optional test command, then the image (or release), tagged with the git SHA."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bgci.deployment import Deployment
from bgci.errors import BgciError, CheckFailed, ConfigError, Refused
from bgci.model import Check, Release, StageResult

_CI_SHA_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")
REVISION = "org.opencontainers.image.revision"
DIRTY = "org.bgci.dirty"


@dataclass(frozen=True)
class Source:
    """The commit a build comes from, and what in the build context differs from it."""

    sha: str  # short, 12 hex digits
    changed: tuple[str, ...] = ()  # paths with uncommitted changes (untracked ones too)
    fingerprint: str = ""  # 8 hex digits of those changes: one per dirty content

    @property
    def tag(self) -> str:
        """``<sha>``, or ``<sha>-dirty-<fingerprint>``: one tag never names two contents."""
        return f"{self.sha}-dirty-{self.fingerprint}" if self.changed else self.sha

    def labels(self) -> dict[str, str]:
        """What the image (or release) records: the commit, and whether it had changes."""
        if not self.sha:
            return {}
        return {REVISION: self.sha, DIRTY: "true" if self.changed else "false"}


def git_source(root: Path, context: Path, environ: Mapping[str, str], *,
               required: bool = True) -> Source:
    """The git commit of ``root`` and the uncommitted changes under ``context`` (outside git: the
    CI's commit variable, taken as clean); ConfigError when there is no commit to name and one
    is ``required`` (no --tag), else an unknown one."""
    sha = _git(root, "rev-parse", "--short=12", "HEAD")
    if sha is None:
        for name in _CI_SHA_VARS:
            if environ.get(name):
                return Source(environ[name][:12])
        if not required:
            return Source("")
        raise ConfigError(f"no git commit found in {root} to tag the image with",
                          "run inside a git checkout or pass --tag")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--",
                  str(context), strip=False) or ""
    changed = _changed_paths(status)
    if not changed:
        return Source(sha)
    digest = hashlib.sha256((_git(root, "diff", "HEAD", "--binary", "--", str(context),
                                  strip=False) or "").encode())
    for name in changed:  # untracked files are not in the diff: their names and contents
        path = root / name
        digest.update(name.encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return Source(sha, changed, digest.hexdigest()[:8])


def _changed_paths(porcelain: str) -> tuple[str, ...]:
    """The paths ``git status --porcelain=v1 -z`` lists (a rename's old path skipped)."""
    paths = []
    entries = iter(porcelain.split("\0"))
    for entry in entries:
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":
                next(entries, None)  # the path it was renamed or copied from
    return tuple(sorted(paths))


def _git(root: Path, *args: str, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             errors="replace", check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if strip else out.stdout


def build(d: Deployment, result: StageResult, tag: str | None = None, *,
          require_clean: bool = False) -> StageResult:
    cfg = d.config.build
    source = git_source(d.config.root, (d.config.root / cfg.context).resolve(), os.environ,
                        required=not tag)
    if source.changed:
        shown = ", ".join(source.changed[:5]) + (" ..." if len(source.changed) > 5 else "")
        if require_clean:
            raise Refused(f"the build context has uncommitted changes ({len(source.changed)}: "
                          f"{shown}); --require-clean builds only committed code",
                          "commit or stash them; nothing was built")
        d.log.warning(f"building uncommitted changes ({len(source.changed)}: {shown}): "
                      + (f"the tag is {source.tag}, not {source.sha}" if not tag else
                         f"the image is labelled {DIRTY}=true"))
    tag = tag or source.tag
    if cfg.test_command:
        with d.log.group(f"test command: {cfg.test_command}"):
            check = _run_tests(cfg.test_command, d.config.root / cfg.context)
            result.add(check)
            d.log.info(check.output[-3000:])
        if not check.ok:
            raise CheckFailed(f"build.test_command failed: {check.message}",
                              "the test output is in build.xml; no image was built")
    before = d.platform.tagged(tag)
    started = time.monotonic()
    with d.log.group(f"build {d.config.image_repo}:{tag}"):
        try:
            release = d.platform.build(tag, d.log, source.labels())
        except CheckFailed as exc:
            result.add(Check("build", "failed", time.monotonic() - started, str(exc)))
            raise
    result.set_release(release)
    result.extra["revision"], result.extra["dirty"] = source.sha, bool(source.changed)
    # the same tag built from the same sources again is the same release: nothing changed
    result.changed = before is None or before.digest != release.digest
    built = "built" if result.changed else "already built, unchanged:"
    result.add(Check("build", "passed", time.monotonic() - started,
                     f"{built} {release.image} ({release.digest})"))
    _same_tag_other_digest(d, result, release)
    d.log.info(f"{built} {release.image} {release.digest}")
    return result


def _same_tag_other_digest(d: Deployment, result: StageResult, release: Release) -> None:
    """A tag bgci deployed before that now names another image: say so, loudly (the colours
    and the records keep the old digest, which `rollback --to` still reaches while it exists)."""
    try:
        records = d.store.read().releases.values()
    except BgciError:  # the state is not reachable from here: nothing to compare with
        return
    tagged = release.image.split("@", 1)[0]  # a pushed release is pinned to its digest too
    before = sorted({r.release.digest for r in records
                     if r.release.image.split("@", 1)[0] == tagged
                     and r.release.digest != release.digest})
    if not before:
        return
    message = (f"{tagged} now names {release.digest[:19]}, but bgci deployed it as "
               f"{', '.join(b[:19] for b in before)}: one tag, two images. Deployed colours keep "
               "their digest; build each change from its own commit (or pass --tag) so that a "
               "tag names one image")
    result.add(Check("tag moved to another image", "passed", 0.0, message))
    result.extra["tag_moved_from"] = before
    d.log.warning(message)


def _run_tests(command: str, cwd: Path) -> Check:
    started = time.monotonic()
    # errors="replace": the test command may print anything (invalid UTF-8 too); that is no crash
    proc = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, capture_output=True, text=True,
                          errors="replace", check=False)
    output = proc.stdout + proc.stderr
    seconds = time.monotonic() - started
    if proc.returncode == 0:
        return Check("test_command", "passed", seconds, f"{command!r} passed", output[-20000:])
    return Check("test_command", "failed", seconds, f"{command!r} exited {proc.returncode}",
                 output[-20000:])
