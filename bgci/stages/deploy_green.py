"""`bgci deploy-green`: start the new release on the idle colour and expose it on the preview."""

from __future__ import annotations

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.faults import checkpoint
from bgci.hooks import run_hook
from bgci.model import Check, Instance, StageResult
from bgci.stages.common import failing_logs, health_check, history, serving
from bgci.stages.reconcile import conclude, live_line, reconcile


def deploy_green(d: Deployment, result: StageResult, image: str,
                 allow_quarantined: bool = False) -> StageResult:
    """The idle colour (never the one the state says is live) runs ``image`` with this config's
    platform settings, healthy on the preview address; live traffic is not touched. Nothing to
    do when that release, with these settings, already serves live traffic."""
    release = d.platform.resolve(image)
    result.set_release(release)
    with d.locked():
        checkpoint("deploy-green:locked")
        state, view = reconcile(d, result, first_deploy=True)
        spec = d.platform.spec()
        live = serving(d, view, release.digest)
        if live is not None and not spec.differences(live.spec):
            return _already_live(d, result, live)
        idle = view.idle
        result.colour = idle
        reason = state.quarantined.get(release.digest)
        if reason and not allow_quarantined:
            raise Refused(f"{release.short} is quarantined: {reason}",
                          "fix and rebuild, or pass --allow-quarantined if you really mean it")
        current = view.running(idle)
        recorded = state.release_of(idle)
        # the state must say so too: a run killed right after starting it never recorded nor routed it
        same = (current is not None and current.release.digest == release.digest
                and state.candidate == idle and recorded is not None
                and recorded.digest == release.digest)
        changed = spec.differences(current.spec) if same and current is not None else []
        if same and not changed:
            d.log.info(f"{idle} already runs {release.short}: checking its health only")
        else:
            if changed:
                d.log.info(f"{idle} runs {release.short} with other settings "
                           f"({'; '.join(changed)}): starting it again")
            result.changed = True
            run_hook(d, "pre_deploy", result, release, idle)
            with d.log.group(f"start {release.short} on {idle}"):
                instance = d.platform.start(idle, release, spec, d.log)
                checkpoint("deploy-green:started")
                d.router.set_backend(idle, instance.address)
                checkpoint("deploy-green:routed")
            state.deployed(idle, release, spec)
            history(d, state, "deploy-green", f"{idle} now runs {release.image}", release)
            d.store.write(state)
            checkpoint("deploy-green:recorded")
        with d.log.group(f"health of {idle} through {d.router.preview_url}"):
            check = result.add(failing_logs(d, idle, health_check(d, idle, f"health {idle}")))
        if not check.ok:
            raise CheckFailed(f"{idle} did not become healthy: {check.message}",
                              f"live traffic is untouched on {view.live or 'nothing'}; "
                              "its logs are in deploy-green.xml")
        run_hook(d, "post_deploy", result, release, idle)
        seen = conclude(d, result)
        d.log.info(f"{idle} is healthy at {d.router.preview_url} (preview); {live_line(seen)}")
    return result


def _already_live(d: Deployment, result: StageResult, live: Instance) -> StageResult:
    """The release, started with these settings, already serves live traffic: deploying it on
    the idle colour would only replace the rollback target with a copy of what is live."""
    result.colour = live.colour
    seen = conclude(d, result)
    result.message = (f"{live.release.short} already serves live traffic on {live.colour} with "
                      f"these settings: nothing to deploy; {live_line(seen)}")
    result.add(Check("deploy-green", "passed", 0.0, result.message))
    d.log.info(result.message)
    return result
