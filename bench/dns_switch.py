"""The DNS row: router.kind = "dns" on the process platform, per TTL, behind a caching resolver.

A DNS switch is not instantaneous: clients keep resolving the old colour until their resolver's
cached answer expires. So what this row measures is what a team picks a TTL by: under a load
whose every new connection resolves the live name through a real caching resolver (unbound) in
front of the real authoritative server (BIND's named), both on loopback, how many requests are
lost (none may be: the old colour keeps running) and how long after the authoritative record
moved every new connection reached the new colour, per TTL.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from bench.infra import Context, say
from bench.project import BgciFailed, Project
from tests.helpers.dnsserver import (
    KEY_NAME,
    ZONE,
    Bind,
    Request,
    ResolvingLoad,
    Unbound,
    free_port_on,
    missing,
    new_secret,
    time_to_all_new,
    watch_answer,
)

TTLS = (1, 2, 5)
MAX_CYCLES = 3  # each cut-over waits the TTL out: more cycles add minutes, not insight
HOSTS = {"blue": "127.0.0.2", "green": "127.0.0.3"}
SECRET_ENV = "BENCH_DNS_KEY_SECRET"
COMMAND = ("gunicorn app:app --bind {host}:{port} --workers 2 --worker-class gthread --threads 4 "
           "--graceful-timeout 4 --timeout 30")
METHOD = [
    "DNS row: named (authoritative, a test zone, TSIG) and unbound (caching, prefetch and serve-expired "
    "off) on loopback; colours at 127.0.0.2 and 127.0.0.3 on one port. 4 clients, each resolving the "
    "live name through unbound for every new connection (one GET /version per connection, 20 ms apart, "
    "no retries). Time to 100% new: from the moment the authoritative server answered the new address "
    "(asked every 10 ms) until every connection started from then on reached the new colour.",
]


def unavailable(ctx: Context) -> str | None:
    if not ctx.releases:
        return "the process releases could not be built"
    return missing() or None


def _config(app: str, ttl: int, ctx: Context, server: tuple[str, int], port: int) -> dict[str, Any]:
    return {
        "app": app,
        "platform": {"kind": "process", "command": COMMAND, "state_dir": str(ctx.state_dir),
                     "port": port, "hosts": HOSTS},
        "router": {"kind": "dns", "managed": False, "dns_server": f"{server[0]}:{server[1]}",
                   "dns_zone": ZONE, "dns_live_name": f"www-{ttl}.{ZONE}",
                   "dns_preview_name": f"preview-{ttl}.{ZONE}", "dns_ttl": ttl,
                   "dns_key_name": KEY_NAME, "dns_key_secret_env": SECRET_ENV},
        "health": {"path": "/healthz", "interval": 0.2, "deadline": 60},
        "switch": {"drain": 0},
    }


def _moved(changes: list[tuple[float, list[str]]], address: str, after: float) -> float | None:
    return next((t for t, answer in changes if answer == [address] and t >= after), None)


def _one_ttl(ctx: Context, ttl: int, bind: Bind, resolver: Unbound, secret: str) -> dict[str, Any]:
    app = f"bench-dns{ttl}-{ctx.run_id}"
    port = free_port_on(*HOSTS.values())
    project = Project(ctx.work / "dns" / app, _config(app, ttl, ctx, bind.address, port), ctx.res,
                      env={SECRET_ENV: secret})
    ctx.res.add(f"bgci app {app}", project.down)
    project.bgci("deploy-green", "--image", ctx.releases["v1"])
    project.bgci("verify")
    project.bgci("switch")
    live = f"www-{ttl}.{ZONE}"
    stop = threading.Event()
    changes: list[tuple[float, list[str]]] = []
    watcher = watch_answer(bind.address, live, stop, changes)
    load = ResolvingLoad(resolver.address, live, port, limit=900.0).start()
    cuts: list[tuple[float, str]] = []  # (when the authoritative record moved, the new colour)
    try:
        for cycle in range(min(ctx.cycles, MAX_CYCLES)):
            again = cycle > 0  # the previous rollback quarantined v2: redeploy it on purpose
            project.bgci("deploy-green", "--image", ctx.releases["v2"],
                         *(["--allow-quarantined"] if again else []))
            project.bgci("verify")
            for stage, address, colour in (("switch", HOSTS["green"], "green"),
                                           ("rollback", HOSTS["blue"], "blue")):
                began = time.monotonic()
                project.bgci(stage, *(["--force"] if again and stage == "switch" else []))
                moved = _moved(changes, address, began)
                if moved is not None:
                    cuts.append((moved, colour))
                time.sleep(1.0)  # connections after the TTL, before the next cut-over
            say(f"DNS TTL {ttl}s: cycle {cycle + 1} done")
    finally:
        requests = load.stop()
        stop.set()
        watcher.join(timeout=5)
    return _summary(ttl, requests, cuts, project)


def _summary(ttl: int, requests: list[Request], cuts: list[tuple[float, str]],
             project: Project) -> dict[str, Any]:
    ends = [t for t, _ in cuts[1:]] + [float("inf")]
    seconds = [time_to_all_new([r for r in requests if moved <= r.started < end], moved, colour)
               for (moved, colour), end in zip(cuts, ends, strict=True)]
    lost = [r for r in requests if r.error]
    walls = [c.wall for c in project.calls if c.stage in ("switch", "rollback")]
    return {"ttl_s": ttl, "requests": len(requests), "lost": len(lost),
            "lost_examples": sorted({r.error for r in lost})[:5], "cutovers": len(cuts),
            "to_all_new_s": seconds,
            "to_all_new_median_s": round(statistics.median(seconds), 2) if seconds else None,
            "to_all_new_max_s": round(max(seconds), 2) if seconds else None,
            "within_ttl_plus_1": all(s <= ttl + 1 for s in seconds),
            "stage_wall_median_s": round(statistics.median(walls), 2) if walls else None}


def run_dns(ctx: Context, ttls: tuple[int, ...] = TTLS) -> dict[str, Any]:
    """Every TTL of ``ttls`` in turn, against one named and one unbound."""
    result: dict[str, Any] = {"name": "bgci dns (process)", "ttls": []}
    reason = unavailable(ctx)
    if reason:
        result["skipped"] = reason
        say(f"DNS row: skipped: {reason}")
        return result
    secret = new_secret()
    bind = Bind(ctx.work / "dns" / "named", secret)
    resolver = Unbound(ctx.work / "dns" / "unbound", bind.address)
    started_here = ctx.res.checkpoint()
    try:
        ctx.res.add("named (DNS row)", bind.stop)
        bind.start()
        ctx.res.add("unbound (DNS row)", resolver.stop)
        resolver.start()
        for ttl in ttls:
            say(f"DNS TTL {ttl}s: v1 live, then switch + rollback cycles under a resolving load")
            try:
                result["ttls"].append(_one_ttl(ctx, ttl, bind, resolver, secret))
            except (BgciFailed, RuntimeError) as exc:
                result["ttls"].append({"ttl_s": ttl, "failure": str(exc)[:1500]})
                say(f"DNS TTL {ttl}s: FAILED: {str(exc)[:400]}")
    finally:
        ctx.res.cleanup(started_here)
    return result
