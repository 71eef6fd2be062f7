"""Lifecycle hooks: a command on the CI runner, or a one-off run of the new release ("green").

Each hook that runs is one check of its stage (one JUnit test case, with the command's output).
A failing lifecycle hook fails its stage (exit 1) before the stage changes anything further:
``pre_switch`` runs before the router moves, so a failed migration leaves live traffic where it was.
``on_failure`` runs after a stage has failed; its own outcome is recorded but never changes the
stage's exit code.
"""

from __future__ import annotations

import time

from bgci.commands import on_runner
from bgci.deployment import Deployment
from bgci.errors import BgciError, CheckFailed
from bgci.model import Check, Colour, Release, StageResult
from bgci.settings import HookConfig

# Exit codes after which hooks.on_failure runs: a check failed, the infrastructure broke, or the
# stage refused. Not 2 (the configuration itself is in doubt), 5 (another pipeline's lock: nothing
# of this one ran) or 130 (the CI is cancelling the job).
FAILURE_CODES = (1, 3, 4)
OUTPUT_LIMIT = 20000


def facts(result: StageResult) -> dict[str, str]:
    """The deployment's facts as BGCI_* variables for a hook."""
    values = {
        "BGCI_APP": result.app, "BGCI_STAGE": result.stage,
        "BGCI_LIVE_COLOR": result.live_colour or "", "BGCI_IDLE_COLOR": result.idle_colour or "",
        "BGCI_COLOR": result.colour or "", "BGCI_IMAGE": result.image, "BGCI_DIGEST": result.digest,
        "BGCI_LIVE_URL": result.live_url, "BGCI_PREVIEW_URL": result.preview_url,
    }
    return {k: v for k, v in values.items() if v}


def run_hook(d: Deployment, name: str, result: StageResult, release: Release,
             colour: Colour | None) -> None:
    """Run hook ``name`` if configured; a failure raises CheckFailed (no traffic was changed).

    ``run_in = "green"`` runs it once as a one-off of ``release`` (the new release) with the app's
    environment: a container on the app's network (docker) or the release's virtualenv (process).
    """
    hook: HookConfig = getattr(d.config.hooks, name)
    if not hook.command:
        return
    env = facts(result)
    where = f"a one-off of {release.short}" if hook.run_in == "green" else "the runner"
    started = time.monotonic()
    d.log.debug(f"hook {name}: {hook.command}")
    with d.log.group(f"hook {name} (in {where})"):
        try:
            if hook.run_in == "green":
                code, output = d.platform.run_once(release, hook.command, env, hook.timeout)
            else:
                code, output = on_runner(hook.command, env, hook.timeout, str(d.config.root))
        except BgciError as exc:  # the engine or the release is broken: an error, not a failure
            result.add(Check(f"hook {name}", "error", time.monotonic() - started,
                             f"hook {name} could not run in {where}: {exc.message}"))
            raise
        d.log.info(output[-3000:])
    seconds = time.monotonic() - started
    check = result.add(Check(f"hook {name}", "passed" if code == 0 else "failed", seconds,
                             f"hook {name} exited {code} in {where}", output[-OUTPUT_LIMIT:]))
    if not check.ok:
        place = f"a one-off of the new release for {colour}" if hook.run_in == "green" and colour \
            else where
        raise CheckFailed(f"hook {name} failed in {place}: it exited {code}",
                          f"its output is in {result.stage}.xml; "
                          + ("live traffic was not changed" if name != "post_switch"
                             else "live traffic already moved and stays where it is"))


def run_on_failure(d: Deployment, result: StageResult) -> None:
    """Run ``hooks.on_failure`` after a failed stage (exit 1, 3 or 4) when it applies to it.

    Its outcome is one more check of the failed stage; it never raises and never changes the
    stage's exit code.
    """
    hook = d.config.hooks.on_failure
    if (not hook.command or result.exit_code not in FAILURE_CODES
            or result.stage not in hook.stage_list):
        return
    env = {**facts(result), "BGCI_OUTCOME": result.status, "BGCI_EXIT_CODE": str(result.exit_code),
           "BGCI_MESSAGE": result.message}
    started = time.monotonic()
    d.log.debug(f"hook on_failure: {hook.command}")
    with d.log.group("hook on_failure (on the runner)"):
        try:
            code, output = on_runner(hook.command, env, hook.timeout, str(d.config.root))
        except OSError as exc:  # e.g. the config's directory is gone: report it, keep the outcome
            code, output = 127, f"could not run: {exc}"
        d.log.info(output[-3000:])
    result.add(Check("hook on_failure", "passed" if code == 0 else "failed",
                     time.monotonic() - started,
                     f"hook on_failure exited {code} after {result.stage} {result.status}",
                     output[-OUTPUT_LIMIT:]))
