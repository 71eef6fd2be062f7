"""The bgci rows: one per router, each on the platform it runs on, switch + rollback under load.

Adding a router to the benchmark is one line in ``ROWS``. A row whose router module does not exist
(yet) or whose platform is unavailable is reported as skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any

from bench.analysis import Event, latency_summary, summarize
from bench.infra import Context, ensure_swarm, free_port, say, test_env
from bench.project import PROCESS_COMMAND, BgciFailed, Call, Project


@dataclass(frozen=True)
class Row:
    key: str  # what --rows names it by
    router: str
    platform: str
    settings: tuple[tuple[str, Any], ...] = ()  # router.* keys other than the defaults

    @property
    def short(self) -> str:
        """For app names: nginx (1.22) refuses variables named after a long app name."""
        return "".join(w[0] for w in self.key.split("-")) if len(self.key) > 8 else self.key

    @property
    def name(self) -> str:
        extra = "".join(f", {k} = {str(v).lower()}" for k, v in self.settings)
        return f"bgci {self.router} ({self.platform}{extra})"


ROWS = (
    Row("haproxy", "haproxy", "docker"),
    Row("traefik", "traefik", "process"),
    Row("nginx", "nginx", "process"),
    Row("nginx-no-keepalive", "nginx", "process", (("client_keepalive", False),)),
    Row("caddy", "caddy", "process"),
    Row("haproxy-swarm", "haproxy", "swarm"),
)


def unavailable(row: Row, ctx: Context) -> str | None:
    """Why ``row`` cannot run here, or None."""
    for module in (f"bgci.routers.{row.router}", f"bgci.platforms.{row.platform}"):
        if importlib.util.find_spec(module) is None:
            return f"{module} does not exist in this checkout"
    if row.platform in ("docker", "swarm") and ctx.client is None:
        return "no docker engine"
    if row.platform in ("docker", "swarm") and not ctx.images:
        return "the app images could not be built"
    if row.platform == "process" and not ctx.releases:
        return "the process releases could not be built"
    return None


def project_config(app: str, row: Row, ctx: Context) -> dict[str, Any]:
    """``bgci.toml`` of a row's app: short health interval, no smoke suite (the switch is measured)."""
    listen, preview = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config: dict[str, Any] = {
        "app": app,
        "router": {"kind": row.router, "listen": listen, "preview": preview, **dict(row.settings)},
        "health": {"path": "/healthz", "interval": 0.2, "deadline": 60},
        "switch": {"drain": 2},
    }
    if row.platform == "process":
        config["platform"] = {"kind": "process", "command": PROCESS_COMMAND,
                              "state_dir": str(ctx.state_dir)}
    else:
        config["platform"] = {"kind": row.platform, "port": 8000}
        image = test_env().get("BGCI_TEST_HAPROXY_IMAGE") if row.router == "haproxy" else None
        if image:
            config["router"]["image"] = image
    return config


def release(ctx: Context, row: Row, tag: str) -> str:
    return ctx.releases[tag] if row.platform == "process" else ctx.images[tag]


def event_of(call: Call, name: str) -> Event:
    report = call.report or {}
    new = str(report.get("live_colour") or "")
    old = str(report.get("idle_colour") or "")
    return Event(name, call.start, call.end, call.marks.get(name, call.start), old, new,
                 ok=call.code == 0, note="" if call.code == 0 else call.output[-300:])


def lost_during(records: list[list[Any]], calls: list[Call]) -> list[dict[str, Any]]:
    """Each lost request with the bgci command that ran when it was sent (or the one before)."""
    out = []
    for r in (r for r in records if r[5]):
        before = [c for c in calls if c.start <= r[0]]
        call = before[-1] if before else None
        out.append({"error": r[5], "stage": call.stage if call else None,
                    "during": bool(call and r[0] <= call.end),
                    "seconds_after_start": round(r[0] - call.start, 3) if call else None,
                    "seconds_after_decision": round(r[0] - max(call.marks.values()), 3)
                    if call and call.marks else None})
    return out


def run_row(row: Row, ctx: Context) -> dict[str, Any]:
    """Deploy v1 live, then ``ctx.cycles`` x (deploy-green v2, verify, switch, rollback) under load."""
    app = f"bench-{row.short}-{ctx.run_id}"
    started_here = ctx.res.checkpoint()
    if row.platform == "swarm":
        ensure_swarm(ctx.res)
    project = Project(ctx.work / "rows" / app, project_config(app, row, ctx), ctx.res)
    ctx.res.add(f"bgci app {app}", project.down)
    result: dict[str, Any] = {"name": row.name, "kind": "bgci", "router": row.router,
                              "platform": row.platform, "app": app}
    events: list[Event] = []
    try:
        say(f"{row.name}: deploying v1 live")
        project.bgci("deploy-green", "--image", release(ctx, row, "v1"))
        project.bgci("verify")
        project.bgci("switch")
        with ctx.load(project.live_url, app) as load:
            for cycle in range(ctx.cycles):
                again = cycle > 0  # the previous rollback quarantined v2: redeploy it on purpose
                project.bgci("deploy-green", "--image", release(ctx, row, "v2"),
                             *(["--allow-quarantined"] if again else []))
                project.bgci("verify")
                events.append(event_of(project.bgci("switch", *(["--force"] if again else [])),
                                       "switch"))
                time.sleep(ctx.gap)
                events.append(event_of(project.bgci("rollback"), "rollback"))
                time.sleep(ctx.gap)
                say(f"{row.name}: cycle {cycle + 1}/{ctx.cycles} done")
    except Exception as exc:  # reported in the results; the other rows still run
        result["failure"] = str(exc) if isinstance(exc, BgciFailed) else f"{type(exc).__name__}: {exc}"
        say(f"{row.name}: FAILED: {str(exc)[:400]}")
    finally:
        ctx.res.cleanup(started_here)  # `bgci down` and what bgci made: before the next row starts
    if events:
        result.update(summarize(load.records, events, load.began, load.ended))
        result["latency"] = latency_summary(result["events"])
        result["lost_during"] = lost_during(load.records, project.calls)
    result["cycles"] = sum(1 for e in events if e.name == "rollback")
    result["calls"] = [c.summary() for c in project.calls]
    return result
