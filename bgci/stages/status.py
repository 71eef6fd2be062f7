"""`bgci status`: live colour, what each colour runs, its health, the lock and the history."""

from __future__ import annotations

import time
from typing import Any

import requests

from bgci.deployment import Deployment
from bgci.health import probe
from bgci.model import COLOURS, Check, StageResult
from bgci.stages.common import View

STATUS_PROBES = 3


def status(d: Deployment, result: StageResult, *, history: int = 10) -> StageResult:
    """Read-only: never starts the router, never takes the lock."""
    state = d.store.read()
    instances = d.platform.instances()
    router = d.router
    result.live_url, result.preview_url = router.live_url, router.preview_url
    try:
        live = router.live()
        router_state = "running"
    except Exception as exc:  # a stopped router is a status to show, not a reason to fail
        live, router_state = None, f"not answering: {exc}"
    view = View(instances, live)
    result.live_colour, result.idle_colour = live, view.idle if live else None
    colours: dict[str, Any] = {}
    with requests.Session() as session:
        for colour in COLOURS:
            instance = instances.get(colour)
            record = state.colours[colour]
            release = instance.release if instance else record.release
            entry: dict[str, Any] = {
                "role": "live" if colour == live else "idle",
                "running": bool(instance and instance.running),
                "image": release.image if release else None,
                "digest": release.digest if release else None,
                "verified": bool(release and state.is_verified(release.digest)),
                "quarantined": bool(release and release.digest in state.quarantined),
                "direct_url": instance.direct_url if instance else None,
                "candidate": state.candidate == colour,
                "healthy": None,
            }
            if instance and instance.running and router_state == "running":
                url = router.live_url if colour == live else router.preview_url
                # up to 3 probes: one slow answer on a busy host is not "UNHEALTHY" to on-call
                for _ in range(STATUS_PROBES):
                    outcome = probe(session, url, d.config.health, colour)
                    if outcome.ok:
                        break
                    time.sleep(d.config.health.interval)
                entry["healthy"] = outcome.ok
                entry["health"] = outcome.detail
            colours[colour] = entry
    lock = d.store.current_lock()
    result.extra["status"] = {
        "app": d.config.app, "router": router_state, "live": live,
        "previous": state.previous,  # the rollback target (None: nothing to roll back to)
        "live_url": router.live_url, "preview_url": router.preview_url, "colours": colours,
        "lock": lock.to_dict() if lock else None,
        "quarantined": state.quarantined,
        "history": state.history[-history:] if history else [],
    }
    result.add(Check("status", "passed", 0.0, f"live: {live or 'nothing'}; router {router_state}"))
    return result


def render(data: dict[str, Any]) -> str:
    """The status as lines for a human."""
    lines = [f"app {data['app']}: live {data['live'] or 'nothing'} at {data['live_url']}, "
             f"preview at {data['preview_url']} (router {data['router']})"]
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

