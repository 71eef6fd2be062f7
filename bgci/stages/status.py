"""`bgci status`: what runs where, health, flags, the lock, the history; read-only.

Exits 1 when live traffic is not served by the healthy colour the state says is live (or the app
was taken down with `bgci down`), so that a cron job or a CI schedule can alert on it; 0 when it
is, or when nothing was ever switched live.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from bgci.deployment import Deployment
from bgci.errors import CheckFailed
from bgci.health import observe, probe
from bgci.model import COLOURS, Check, Colour, StageResult, other

STATUS_PROBES = 3


def status(d: Deployment, result: StageResult, *, history: int = 10) -> StageResult:
    """Read-only: never starts the router, never takes the lock."""
    state = d.store.read()
    instances = d.platform.instances()
    router = d.router
    result.live_url, result.preview_url = router.live_url, router.preview_url
    try:
        changes = router.changes()
    except Exception as exc:  # what runs could not be inspected: no change to show
        changes = [f"(could not inspect the router: {exc})"]
    try:
        routed = router.live()
        router_state = "running"
    except Exception as exc:  # a stopped router is a status to show, not a reason to fail
        routed, router_state = None, f"not answering: {getattr(exc, 'message', exc)}"
    seen = observe(router.live_url, d.config.health, reach=router.reach)
    live = state.live or routed
    result.live_colour, result.idle_colour = seen.colour, other(live) if live else None
    result.observed = True
    colours: dict[str, Any] = {}
    with requests.Session() as session:
        for colour in COLOURS:
            instance = instances.get(colour)
            record = state.colours[colour]
            release = instance.release if instance else record.release
            spec = instance.spec if instance else record.spec
            entry: dict[str, Any] = {
                "role": "live" if colour == live else "idle",
                "running": bool(instance and instance.running),
                "image": release.image if release else None,
                "digest": release.digest if release else None,
                "port": spec.port if spec and spec.port else None,
                "verified": bool(release and state.is_verified(release.digest)),
                "quarantined": bool(release and release.digest in state.quarantined),
                "direct_url": instance.direct_url if instance else None,
                "candidate": state.candidate == colour,
                "healthy": None,
            }
            if instance and instance.running and router_state == "running":
                url = router.live_url if colour == routed else router.preview_url
                # up to 3 probes: one slow answer on a busy host is not "UNHEALTHY" to on-call
                for _ in range(STATUS_PROBES):
                    outcome = probe(session, url, d.config.health, colour, router.reach)
                    if outcome.ok:
                        break
                    time.sleep(d.config.health.interval)
                entry["healthy"] = outcome.ok
                entry["health"] = outcome.detail
            colours[colour] = entry
    lock = d.store.current_lock()
    result.extra["status"] = {
        "app": d.config.app, "router": router_state, "router_changes": changes,
        "live": seen.colour, "live_recorded": state.live, "routed": routed,
        "serving": seen.detail, "down": state.down,
        "previous": state.previous,  # the rollback target (None: nothing to roll back to)
        "live_url": router.live_url, "preview_url": router.preview_url,
        "colors": colours, "colours": colours,  # "colours": bgci 0.1's spelling (CHANGELOG.md)
        "lock": lock.to_dict() if lock else None,
        "quarantined": state.quarantined,
        "history": state.history[-history:] if history else [],
    }
    fresh = live is None and not instances and not any(r.release for r in state.colours.values())
    result.extra["status"]["nothing_deployed"] = fresh
    result.display = render(result.extra["status"])
    if fresh:
        result.message = "nothing deployed yet: run `bgci deploy-green`"
    problem = _problem(state.down, live, seen.colour, seen.detail)
    result.add(Check("live traffic", "failed" if problem else "passed", 0.0,
                     problem or f"live: {seen.colour or 'nothing yet'}; router {router_state}"))
    if problem:
        raise CheckFailed(problem, "`bgci status` above shows each colour; "
                          + ("`bgci up` brings the app back" if state.down else
                             "any stage heals the router and the live colour from the recorded "
                             "state, `bgci up` only that"))
    return result


def _problem(down: dict[str, str] | None, live: Colour | None, seen: Colour | None,
             detail: str) -> str:
    if down:
        return (f"the app is down: `bgci down` by {down.get('by', '?')} at {down.get('at', '?')}"
                "; live traffic is not served")
    if live is None:
        return ""  # nothing was ever switched live
    if seen != live:
        return f"live traffic is not served by {live}: {detail}"
    return ""


def render(data: dict[str, Any]) -> str:
    """The status as lines for a human."""
    serving = data["live"] or f"NOTHING ({data.get('serving', '')})"
    if data.get("nothing_deployed"):
        return (f"app {data['app']}: nothing deployed yet: run `bgci deploy-green` "
                f"(live address {data['live_url']}, preview {data['preview_url']})")
    lines = [f"app {data['app']}: live {serving} at {data['live_url']}, "
             f"preview at {data['preview_url']} (router {data['router']})"]
    if data.get("down"):
        lines.append(f"  DOWN since {data['down'].get('at', '?')} (`bgci down` by "
                     f"{data['down'].get('by', '?')}): `bgci up` brings it back")
    for change in data.get("router_changes") or []:
        lines.append(f"  router runs with other settings: {change} (`bgci router reboot`)")
    for colour, c in data["colours"].items():
        flags = [f for f, on in (("verified", c["verified"]), ("QUARANTINED", c["quarantined"]),
                                 ("candidate", c["candidate"])) if on]
        health = {True: "healthy", False: f"UNHEALTHY ({c.get('health', '')})",
                  None: "not probed"}[c["healthy"]]
        running = "running" if c["running"] else "stopped"
        lines.append(f"  {colour:5} {c['role']:4} {running:7} {c['image'] or '-'} "
                     f"{(c['digest'] or '')[:19]} {health} {' '.join(flags)}".rstrip())
    lock = data["lock"]
    lines.append(f"  lock: {lock['holder']} since {lock['since']}" if lock else "  lock: free")
    for entry in data["history"]:
        lines.append(f"  {entry.get('at', '')} {entry.get('stage', ''):12} "
                     f"{entry.get('outcome', ''):6} {entry.get('change', '')} "
                     f"({entry.get('who', '')})")
    return "\n".join(lines)
