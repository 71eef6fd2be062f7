"""What several stages do: see the target, check health, confirm a cut-over, drain, write history."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from bgci.deployment import Deployment
from bgci.health import COLOUR_HEADER, wait_healthy
from bgci.model import Check, Colour, Instance, Release, other
from bgci.record import State
from bgci.timings import waits_on


@dataclass
class View:
    """The target as a stage found it (after healing): instances from the platform, the live
    colour as recorded (and the router made to agree)."""

    instances: dict[Colour, Instance]
    live: Colour | None

    @property
    def idle(self) -> Colour:
        """The colour live traffic does not go to (blue before the first switch)."""
        return other(self.live) if self.live else "blue"

    def running(self, colour: Colour) -> Instance | None:
        instance = self.instances.get(colour)
        return instance if instance is not None and instance.running else None


def serving(d: Deployment, view: View, digest: str) -> Instance | None:
    """The live colour's instance when it runs ``digest`` and answered live traffic as the stage
    began (reconcile's look): that release's pipeline has reached its goal."""
    live = view.running(view.live) if view.live else None
    found = d.found
    if (not digest or live is None or live.release.digest != digest or found is None
            or found.colour != live.colour):
        return None
    return live


def history(d: Deployment, state: State, stage: str, change: str, release: Release | None,
            outcome: str = "passed") -> None:
    state.log({
        "stage": stage, "change": change, "outcome": outcome, "who": d.who.holder,
        "job_url": d.who.job_url, "image": release.image if release else "",
        "digest": release.digest if release else "",
    })


def health_check(d: Deployment, colour: Colour, name: str, *, deadline: float | None = None,
                 live: bool = False, settled: bool = False) -> Check:
    """Health of ``colour`` through the preview address (or the live one when it is live);
    ``settled``: an earlier stage saw it healthy, one fresh probe set will do (wait_healthy)."""
    url = d.router.live_url if live else d.router.preview_url
    return wait_healthy(url, d.config.health, d.log, name=name, colour=colour, deadline=deadline,
                        watch=lambda: d.platform.failure(colour), reach=d.router.reach,
                        settled=settled, steady=0.0 if settled else d.router.settle_for())


@waits_on("app")
def confirm(d: Deployment, colour: Colour) -> Check:
    """Fresh requests through the live address: every one must be answered by ``colour``."""
    cfg = d.config.health
    count = d.config.switch.confirm_requests
    started = time.monotonic()
    seen: dict[str, int] = {}
    for _ in range(count):
        # a DNS name is resolved again at its server for each: where a new client goes now
        where = d.router.reach(d.router.live_url)
        host = cfg.host or where.host
        try:
            if where.problem:
                key = where.problem
            else:
                # a new connection each time: "new requests", not a pooled keep-alive one
                response = requests.get(where.url + cfg.path,
                                        headers={"Host": host} if host else {},
                                        timeout=cfg.timeout, allow_redirects=False)
                said = response.headers.get(COLOUR_HEADER, "")
                key = said or where.colour or "(no header)"
                if where.colour and said and said != where.colour:
                    key = f"{said} at {where.colour}'s address"
                if response.status_code != cfg.status:
                    key = f"{key} HTTP {response.status_code}"
        except requests.RequestException as exc:
            key = type(exc).__name__
        seen[key] = seen.get(key, 0) + 1
        if key != colour:
            # the verdict is in; each further request would be a user's sent to a failing colour
            break
    seconds = time.monotonic() - started
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
    if seen.get(colour, 0) == count:
        return Check("switch confirmation", "passed", seconds,
                     f"{count}/{count} new requests through {d.router.live_url} reached {colour}")
    return Check("switch confirmation", "failed", seconds,
                 f"expected all {count} requests through {d.router.live_url} to reach {colour}; "
                 f"saw {summary} (stopped at the first that did not)")


@waits_on("router")
def drain(d: Deployment, colour: Colour) -> Check:
    """Wait until the router has no request in flight to ``colour``, at most switch.drain s; then
    have the router close what is still open to it (streams, WebSockets), as far as it can.

    Where new clients may still reach ``colour`` for a while (a DNS record's TTL: resolvers cache
    the old answer), wait that out first, whatever switch.drain says: until then the cut-over is
    not done."""
    stale = d.router.stale_for()
    if stale > 0:
        return _wait_out(d, colour, stale)
    limit = d.config.switch.drain
    started = time.monotonic()
    while True:
        inflight = d.router.inflight(colour)
        elapsed = time.monotonic() - started
        if inflight == 0:
            return Check(f"drain {colour}", "passed", elapsed,
                         f"no request in flight to {colour} after {elapsed:.1f}s; "
                         f"{colour} keeps running for an instant rollback")
        if elapsed >= limit:
            closed = d.router.disconnect(colour)
            return Check(f"drain {colour}", "passed", elapsed,
                         f"{inflight} request(s) still in flight to {colour} after switch.drain="
                         f"{limit:.0f}s: {closed}; {colour} keeps running for an instant rollback")
        time.sleep(0.1)


def _wait_out(d: Deployment, colour: Colour, stale: float) -> Check:
    """The drain of a switch that the router does not carry (DNS): no request goes through bgci,
    so there is nothing to count; what can be known is when the last cached answer naming
    ``colour`` has expired."""
    started = time.monotonic()
    d.log.info(f"waiting {stale:.0f}s (the record's TTL, and a second: resolvers count whole "
               f"seconds) before calling the cut-over done: until then resolvers may still send "
               f"new clients to {colour}, which keeps running")
    with d.log.waiting(f"resolvers' caches to let go of {colour}") as progress:
        while (left := stale - (time.monotonic() - started)) > 0:
            progress.update(f"{left:.0f}s left")
            time.sleep(min(1.0, left))
    closed = d.router.disconnect(colour)
    return Check(f"drain {colour}", "passed", time.monotonic() - started,
                 f"waited out the TTL and a second ({stale:.0f}s): every resolver that honours "
                 f"it now sends new clients to the new colour; {closed}; {colour} keeps running "
                 "for an instant rollback")


def failing_logs(d: Deployment, colour: Colour, check: Check) -> Check:
    """Attach the colour's last log lines to a failed check: the first thing on-call asks for."""
    if not check.ok:
        try:
            tail = d.platform.logs(colour, 40)
        except Exception as exc:  # logs are a courtesy; the failure itself is what matters
            tail = f"(could not read logs: {exc})"
        check.output = f"{check.output}\n--- last lines of {colour}'s output ---\n{tail}".strip()
    return check
