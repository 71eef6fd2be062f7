"""What bgci itself costs: its overhead per stage, `bgci --help` cold start, and how cost grows
with the number of apps deployed at once."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.analysis import percentile
from bench.bgci_rows import Row, project_config, release
from bench.infra import Context, ensure_swarm, say
from bench.project import BgciFailed, Project, bgci_argv, clean_env

OVERHEAD_STAGES = ("build", "deploy-green", "verify", "switch", "rollback")


def overhead(rows: Iterable[dict[str, Any]], builds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per (row, stage): calls, median wall time, waits and overhead (wall minus waits), max overhead."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for platform, calls in builds.items():
        for call in calls:
            groups.setdefault((f"build ({platform})", "build"), []).append(call)
    for row in rows:
        for call in row.get("calls", []):
            if call["code"] == 0 and call["stage"] in OVERHEAD_STAGES:
                groups.setdefault((row["name"], call["stage"]), []).append(call)
    out = []
    for (name, stage), calls in groups.items():
        def median(key: Callable[[dict[str, Any]], float], calls: list[dict[str, Any]] = calls) -> float:
            return round(percentile([key(c) for c in calls], 50) or 0.0, 3)

        waits: dict[str, float] = {}
        for kind in sorted({k for c in calls for k in c["waits_s"]}):
            waits[kind] = round(percentile([float(c["waits_s"].get(kind, 0.0)) for c in calls], 50) or 0.0, 3)
        out.append({"row": name, "stage": stage, "calls": len(calls),
                    "wall_s": median(lambda c: c["wall_s"]), "waits_s": waits,
                    "overhead_s": median(lambda c: c["overhead_s"]),
                    "overhead_max_s": round(max(c["overhead_s"] for c in calls), 3)})
    order = {s: i for i, s in enumerate(OVERHEAD_STAGES)}
    return sorted(out, key=lambda o: (order.get(o["stage"], 99), o["row"]))


# What a stage's process imports before it does anything (the cost every stage call pays once).
IMPORTS = {
    "import_docker_stage": "import bgci.cli, bgci.deployment, bgci.platforms.docker, bgci.routers.haproxy, "
                           "bgci.stages.switch",
    "import_process_stage": "import bgci.cli, bgci.deployment, bgci.platforms.process, bgci.routers.traefik, "
                            "bgci.stages.switch",
    "import_paramiko": "import paramiko",
}


def _time(cmd: list[str], runs: int) -> dict[str, float]:
    """Mean, median and min wall time of ``cmd`` in ms, a new process each run, after 3 warm-ups."""
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        proc = subprocess.run([hyperfine, "-N", "--warmup", "3", "--runs", str(runs), "--export-json",
                               "/dev/stdout", "--style", "none", shlex.join(cmd)],
                              capture_output=True, text=True, check=True, env=clean_env())
        data = json.loads(proc.stdout[proc.stdout.index("{"):])["results"][0]
        return {name: round(data[key] * 1000, 1) for name, key in (
            ("mean_ms", "mean"), ("median_ms", "median"), ("min_ms", "min"), ("stddev_ms", "stddev"))}
    times = []
    for i in range(runs + 3):
        began = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=clean_env())
        if i >= 3:
            times.append((time.perf_counter() - began) * 1000)
    return {"mean_ms": round(sum(times) / len(times), 1), "median_ms": round(percentile(times, 50) or 0, 1),
            "min_ms": round(min(times), 1)}


def help_cold_start(runs: int) -> dict[str, Any]:
    """`bgci --help` in a new process each time (hyperfine when installed, else a timed loop).

    Timed the same way: ``python -c pass``, the floor any Python CLI pays here (the interpreter
    and its site-packages), and the imports a docker / process stage makes before it starts."""
    out: dict[str, Any] = {"tool": "hyperfine" if shutil.which("hyperfine") else "timed loop", "runs": runs,
                           "bgci_help": _time([*bgci_argv(), "--help"], runs),
                           "python_floor": _time([sys.executable, "-c", "pass"], runs)}
    for key, code in IMPORTS.items():
        if key == "import_paramiko" and importlib.util.find_spec("paramiko") is None:
            continue
        out[key] = _time([sys.executable, "-c", code], max(3, runs // 3))
    return out


def _parallel(fn: Callable[[Project], Any], projects: list[Project], workers: int) -> float:
    """Run ``fn`` for every project at once (``workers`` at a time); the wall time it took."""
    began = time.time()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(fn, p) for p in projects]:
            future.result()
    return time.time() - began


def _grown(result: dict[str, Any]) -> dict[str, Any]:
    base = result["sizes"][0] if result["sizes"] else None
    for entry in result["sizes"]:
        ratio = entry["deploy_green_plus_switch_s"] / base["deploy_green_plus_switch_s"] if base else None
        entry["ratio_vs_first"] = round(ratio, 2) if ratio else None
        entry["ratio_per_unit"] = round(ratio / (entry["n"] / base["n"]), 2) if ratio and base else None
    return result


def _step(stage: str, ctx: Context, row: Row, live: dict[str, str],
          failed: dict[str, str]) -> Callable[[Project], None]:
    """One stage of an app's pipeline; a failure is recorded in ``failed`` and stops that app only."""
    def run(project: Project) -> None:
        if project.app in failed:
            return
        try:
            if stage == "deploy-green":
                live[project.app] = "v2" if live[project.app] == "v1" else "v1"
                project.bgci(stage, "--image", release(ctx, row, live[project.app]))
            else:
                project.bgci(stage)
        except BgciFailed as exc:
            failed[project.app] = f"{stage}: {str(exc).splitlines()[-1][:300]}"
    return run


def scale(ctx: Context, sizes: list[int], row: Row) -> dict[str, Any]:
    """deploy-green + switch of 1, 4, 16... apps at once (each app a pipeline of its own)."""
    biggest = max(sizes)
    projects = []
    for k in range(biggest):
        app = f"bench-scale-{ctx.run_id}-{k}"
        project = Project(ctx.work / "scale" / app, project_config(app, row, ctx), ctx.res)
        ctx.res.add(f"bgci app {app}", project.down)
        projects.append(project)
    live: dict[str, str] = {}

    def first(p: Project) -> None:
        p.bgci("deploy-green", "--image", release(ctx, row, "v1"))
        p.bgci("verify")
        p.bgci("switch")
        live[p.app] = "v1"

    result: dict[str, Any] = {"row": row.name, "unit": "apps", "sizes": []}
    try:
        say(f"scale: deploying v1 live on {biggest} apps ({row.name}), 4 at a time")
        _parallel(first, projects, 4)
        for size in sizes:
            group = projects[:size]
            marks = {p.app: len(p.calls) for p in group}
            failed: dict[str, str] = {}  # app -> why its pipeline stopped (the others go on)
            say(f"scale: {size} app(s) at once: deploy-green, verify, switch")
            walls = {stage: _parallel(_step(stage, ctx, row, live, failed), group, size)
                     for stage in ("deploy-green", "verify", "switch")}
            deploy_wall, verify_wall, switch_wall = walls.values()
            calls = [c for p in group for c in p.calls[marks[p.app]:]]

            def per_app(stage: str, calls: list[Any] = calls) -> float:
                return round(percentile([c.wall for c in calls if c.stage == stage], 50) or 0.0, 2)

            result["sizes"].append({
                "n": size, "deploy_green_wall_s": round(deploy_wall, 2),
                "verify_wall_s": round(verify_wall, 2), "switch_wall_s": round(switch_wall, 2),
                "deploy_green_plus_switch_s": round(deploy_wall + switch_wall, 2),
                "per_app_deploy_green_s": per_app("deploy-green"), "per_app_switch_s": per_app("switch"),
                "overhead_median_s": round(percentile([c.overhead for c in calls], 50) or 0.0, 3),
                "failed_pipelines": failed})
            for app, why in failed.items():
                say(f"scale: {app} failed at {size} apps: {why}")
    except Exception as exc:  # reported in the results; the benchmark goes on
        result["failure"] = str(exc) if isinstance(exc, BgciFailed) else f"{type(exc).__name__}: {exc}"
        say(f"scale: FAILED: {str(exc)[:400]}")
    finally:
        for project in projects:
            ctx.res.release(f"bgci app {project.app}")

        def down(p: Project) -> None:
            try:
                p.down()
            except Exception as exc:  # recorded; every other app must still be taken down
                ctx.res.problems.append(f"could not take down {p.app}: {exc}")

        _parallel(down, projects, 4)
    return _grown(result)


def scale_replicas(ctx: Context, sizes: list[int], row: Row) -> dict[str, Any]:
    """deploy-green + switch of one app on Swarm with 1, 4, 16... replicas per colour."""
    started_here = ctx.res.checkpoint()
    ensure_swarm(ctx.res)
    app = f"bench-replicas-{ctx.run_id}"
    project = Project(ctx.work / "scale" / app, project_config(app, row, ctx), ctx.res)
    ctx.res.add(f"bgci app {app}", project.down)
    result: dict[str, Any] = {"row": row.name, "unit": "replicas", "sizes": []}
    tag = "v1"
    try:
        say(f"scale: deploying v1 live ({row.name}, 1 replica)")
        for stage in ("deploy-green", "verify", "switch"):
            project.bgci(stage, *(["--image", release(ctx, row, tag)] if stage == "deploy-green" else []))
        for size in sizes:
            tag = "v2" if tag == "v1" else "v1"
            options = ("--set", f"platform.replicas={size}")
            say(f"scale: {size} replica(s) per colour: deploy-green, verify, switch")
            green = project.bgci("deploy-green", "--image", release(ctx, row, tag), options=options)
            project.bgci("verify", options=options)
            switched = project.bgci("switch", options=options)
            result["sizes"].append({
                "n": size, "deploy_green_wall_s": round(green.wall, 2),
                "switch_wall_s": round(switched.wall, 2),
                "deploy_green_plus_switch_s": round(green.wall + switched.wall, 2),
                "overhead_median_s": round(percentile([green.overhead, switched.overhead], 50) or 0.0, 3)})
    except Exception as exc:  # reported in the results; the benchmark goes on
        result["failure"] = str(exc) if isinstance(exc, BgciFailed) else f"{type(exc).__name__}: {exc}"
        say(f"scale: FAILED: {str(exc)[:400]}")
    finally:
        ctx.res.cleanup(started_here)
    return _grown(result)
