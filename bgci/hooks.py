"""Lifecycle hooks: a command on the CI runner, or a one-off run of the new release ("green")."""

from __future__ import annotations

import os
import subprocess
import time

from bgci.deployment import Deployment
from bgci.errors import CheckFailed
from bgci.model import Check, Colour, Release, StageResult


def facts(result: StageResult) -> dict[str, str]:
    """The deployment's facts as BGCI_* variables for a hook."""
    values = {
        "BGCI_APP": result.app, "BGCI_STAGE": result.stage,
        "BGCI_LIVE_COLOR": result.live_colour or "", "BGCI_IDLE_COLOR": result.idle_colour or "",
        "BGCI_COLOR": result.colour or "", "BGCI_IMAGE": result.image, "BGCI_DIGEST": result.digest,
        "BGCI_LIVE_URL": result.live_url, "BGCI_PREVIEW_URL": result.preview_url,
    }
    return {k: v for k, v in values.items() if v}


def run_hook(d: Deployment, name: str, result: StageResult, release: Release | None,
             colour: Colour | None) -> None:
    """Run hook ``name`` if configured; a failure raises CheckFailed (no traffic was changed)."""
    hook = getattr(d.config.hooks, name)
    if not hook.command:
        return
    d.log.info(f"hook {name}: {hook.command} (in {hook.run_in})")
    env = facts(result)
    started = time.monotonic()
    if hook.run_in == "green" and release is not None:
        code, output = d.platform.run_once(release, hook.command, env, hook.timeout)
    else:
        code, output = _on_runner(hook.command, env, hook.timeout, str(d.config.root))
    seconds = time.monotonic() - started
    check = result.add(Check(f"hook {name}", "passed" if code == 0 else "failed", seconds,
                             f"{hook.command!r} exited {code}", output[-20000:]))
    if not check.ok:
        where = f"green ({colour})" if hook.run_in == "green" else "the runner"
        raise CheckFailed(f"hook {name} failed in {where}: {hook.command!r} exited {code}",
                          "its output is in the JUnit report; live traffic was not changed")


def _on_runner(command: str, env: dict[str, str], timeout: float, cwd: str) -> tuple[int, str]:
    try:
        proc = subprocess.run(["/bin/sh", "-c", command], env={**os.environ, **env}, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, f"{out}\n(timed out after {timeout:.0f}s)"
    return proc.returncode, proc.stdout + proc.stderr
