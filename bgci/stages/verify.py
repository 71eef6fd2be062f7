"""`bgci verify`: health, the smoke suite and the latency budget against the preview."""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.health import ProbeSeries, p95, probe, wait_healthy
from bgci.model import Check, Colour, Instance, Outcome, Release, StageResult
from bgci.smoke import run_suite, suite_name
from bgci.stages.common import View, failing_logs, history, serving
from bgci.stages.reconcile import conclude, live_line, reconcile

LATENCY_SAMPLES = 20


def verify(d: Deployment, result: StageResult, digest: str = "") -> StageResult:
    """Health, the smoke suite and the latency budget of the idle colour, through the preview;
    ``digest``: the release this pipeline deployed (Refused when the idle colour runs another;
    nothing to do when it already serves live traffic)."""
    with d.locked():
        state, view = reconcile(d, result)
        live = serving(d, view, digest)
        if live is not None:
            return _already_live(d, result, live, state.is_verified(digest))
        idle = view.idle
        result.colour = idle
        release = candidate_release(view, idle, digest)
        result.set_release(release)
        url = d.router.preview_url
        series = ProbeSeries()
        with d.log.group(f"health of {idle} through {url}"):
            # deploy-green waited for this release to become healthy: one fresh probe set
            check = result.add(failing_logs(d, idle, wait_healthy(
                url, d.config.health, d.log, name=f"health {idle}", colour=idle, series=series,
                watch=lambda: d.platform.failure(idle), reach=d.router.reach, settled=True)))
        if check.ok and (d.config.verify.smoke or d.config.verify.smoke_command):
            target = suite_url(d, url)
            with d.log.group(f"smoke suite {suite_name(d.config.verify)} against {target}"):
                checks, output = run_suite(d.config.verify, d.config.root, target)
                d.log.info(output[-4000:])
            result.checks.extend(checks)
        if check.ok and d.config.verify.p95_ms:
            result.add(_latency(d, url, series))
        failed = [c for c in result.checks if not c.ok]
        if failed:
            names = ", ".join(c.name for c in failed[:5])
            was_verified = state.unverify(release.digest)
            result.changed = was_verified
            history(d, state, "verify", f"{idle} failed verification", release, "failed")
            d.store.write(state)
            raise CheckFailed(f"verification of {idle} ({release.short}) failed: {names}",
                              "details are in verify.xml; "
                              + ("it had passed before, and no longer counts: `bgci switch` "
                                 "refuses it until verify passes again" if was_verified
                                 else "the digest stays unverified"))
        result.changed = result.changed or release.digest not in state.verified
        state.mark_verified(release.digest)
        history(d, state, "verify", f"{idle} verified", release)
        d.store.write(state)
        seen = conclude(d, result)
        quarantined = state.quarantined.get(release.digest)
        if quarantined:
            result.message = (f"{idle} ({release.short}) passed verify, but it is quarantined "
                              f"({quarantined}): `bgci switch` refuses it until `bgci quarantine "
                              f"clear {release.digest} --reason ...`; {live_line(seen)}")
            d.log.warning(result.message)
        else:
            d.log.info(f"{idle} ({release.short}) verified: `bgci switch` may send live traffic "
                       f"to it; {live_line(seen)}")
    return result


def _already_live(d: Deployment, result: StageResult, live: Instance,
                  verified: bool) -> StageResult:
    """This pipeline's release already serves live traffic (a re-run after its switch)."""
    result.colour = live.colour
    result.set_release(live.release)
    seen = conclude(d, result)
    how = "verified before its switch" if verified else "switched without a passing verify"
    result.message = (f"{live.release.short} already serves live traffic on {live.colour} "
                      f"({how}): nothing to verify; {live_line(seen)}")
    result.add(Check("verify", "passed", 0.0, result.message))
    d.log.info(result.message)
    return result


def suite_url(d: Deployment, url: str) -> str:
    """The URL a smoke suite is given for the router's ``url``: the address a DNS name resolves
    to at its server now (a runner's own resolver may still cache the previous colour's)."""
    where = d.router.reach(url)
    return url if where.problem else where.url


def candidate_release(view: View, idle: Colour, digest: str) -> Release:
    """What runs on the idle colour, when it is what this pipeline deployed (``digest``, from
    ``--digest`` or ``BGCI_DIGEST``; empty: whatever runs there). Refused (exit 4) otherwise: a
    pipeline acts only on its own release, never on one another pipeline put there."""
    instance = view.running(idle)
    if instance is None:
        raise Refused(f"nothing runs on the idle colour {idle}", "run `bgci deploy-green` first")
    if digest and instance.release.digest != digest:
        raise Refused(f"the idle colour {idle} runs {instance.release.short}, not the release "
                      f"this pipeline deployed ({digest[:19]}): another pipeline deployed in "
                      "between", "run this pipeline's deploy-green again, or let the other "
                      "pipeline finish")
    return instance.release


def smoke_after_pre_switch(d: Deployment, result: StageResult, target: Colour,
                           live: Colour | None) -> None:
    """``verify.against_blue``: the smoke suite again, after the pre_switch hook (the migration)
    and before any traffic moves: against the live colour through the live address (the old
    release on the new schema), then against ``target`` through the preview (the new release on
    it). Each test is one check; any failure raises CheckFailed, so the switch does not happen."""
    runs: list[tuple[Colour, str, str]] = [(target, "new", d.router.preview_url)]
    if live is not None:
        runs.insert(0, (live, "live", d.router.live_url))
    else:
        result.add(Check("after pre_switch: smoke against the live colour", "skipped", 0.0,
                         "nothing is live yet: no old release to check on the new schema"))
    failed: list[str] = []
    for colour, role, url in runs:
        with d.log.group(f"smoke suite {suite_name(d.config.verify)} against {colour} ({role}) "
                         f"at {url}"):
            checks, output = run_suite(d.config.verify, d.config.root, suite_url(d, url))
            d.log.info(output[-4000:])
        for check in checks:
            check.name = f"after pre_switch, {colour} ({role}): {check.name}"
            result.add(check)
            if not check.ok:
                failed.append(check.name)
    if failed:
        raise CheckFailed(
            f"after the pre_switch hook the smoke suite fails: {', '.join(failed[:5])}",
            f"live traffic stays on {live or 'nothing'}; the hook (the migration) has run, so the "
            "old release must work on what it changed: details are in switch.xml")


def _latency(d: Deployment, url: str, series: ProbeSeries) -> Check:
    import requests

    started = time.monotonic()
    with requests.Session() as session:
        for _ in range(LATENCY_SAMPLES):
            series.probes.append(probe(session, url, d.config.health, None, d.router.reach))
    value, budget = p95(series.latencies_ms), d.config.verify.p95_ms
    outcome: Outcome = "passed" if value <= budget else "failed"
    return Check("latency p95", outcome, time.monotonic() - started,
                 f"p95 {value:.0f} ms over {len(series.latencies_ms)} requests; budget {budget:.0f} ms")
