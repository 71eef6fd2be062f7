"""`bgci build`: the optional test command, then the image (or release), tagged with the git SHA."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, ConfigError
from bgci.model import Check, StageResult

_CI_SHA_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")


def git_tag(root: Path, environ: Mapping[str, str]) -> str:
    """The short git SHA of ``root`` (or of the CI's commit variable); ConfigError when none."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                             capture_output=True, text=True, check=False, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    for name in _CI_SHA_VARS:
        if environ.get(name):
            return environ[name][:12]
    raise ConfigError(f"no git commit found in {root} to tag the image with",
                      "run inside a git checkout or pass --tag")


def build(d: Deployment, result: StageResult, tag: str | None = None) -> StageResult:
    cfg = d.config.build
    tag = tag or git_tag(d.config.root, os.environ)
    if cfg.test_command:
        with d.log.group(f"test command: {cfg.test_command}"):
            check = _run_tests(cfg.test_command, d.config.root / cfg.context)
            result.add(check)
            d.log.info(check.output[-3000:])
        if not check.ok:
            raise CheckFailed(f"build.test_command failed: {check.message}",
                              "the test output is in build.xml; no image was built")
    before = d.platform.built(tag)
    started = time.monotonic()
    with d.log.group(f"build {d.config.image_repo}:{tag}"):
        try:
            release = d.platform.build(tag, d.log)
        except CheckFailed as exc:
            result.add(Check("build", "failed", time.monotonic() - started, str(exc)))
            raise
    result.set_release(release)
    # the same tag built from the same sources again is the same release: nothing changed
    result.changed = before is None or before.digest != release.digest
    built = "built" if result.changed else "already built, unchanged:"
    result.add(Check("build", "passed", time.monotonic() - started,
                     f"{built} {release.image} ({release.digest})"))
    d.log.info(f"{built} {release.image} {release.digest}")
    return result


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
