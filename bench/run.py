"""Prove zero downtime with numbers: bgci's routers against what users do instead, in one run.

    python bench/run.py            # the published run (see docs/benchmark.md)
    python bench/run.py --quick    # a minute or two: every row, tiny sizes
    python bench/run.py --cycles 50 --rows haproxy,stop-start --scale ""
    python bench/run.py --rows port-change,router-upgrade --cycles 3 --scale ""   # everyday changes
    python bench/run.py --rows dns --scale ""     # router.kind = "dns", per TTL (needs named, unbound)

Writes ``<out>/<timestamp>.json`` (everything), ``<out>/latest.md`` (the tables) and
``<out>/latest.png`` (the chart; needs ``pip install 'bgci[bench]'``). Needs a Docker engine and
the local images of ``bash scripts/test-env.sh`` for the docker rows and baselines; rows that
cannot run here are listed as not measured, with the reason. Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/run.py` from anywhere

from bench import report
from bench.baselines import BASELINES, run_baseline
from bench.bgci_rows import ROWS, Row, run_row, unavailable
from bench.changes import CHANGES, run_change
from bench.changes import METHOD as CHANGES_METHOD
from bench.costs import help_cold_start, overhead, scale, scale_replicas
from bench.dns_switch import METHOD as DNS_METHOD
from bench.dns_switch import TTLS, run_dns
from bench.infra import BENCH, REPO, Context, Resources, docker_client, interruptible, say
from bench.project import BgciFailed, build_docker_images, build_process_releases

SCALE_ROWS = {"apps": ROWS[0], "replicas": next(r for r in ROWS if r.platform == "swarm")}
DEFAULT_CYCLES = 6  # the whole run then takes under 15 minutes on 2 busy cores
METHOD = [
    "Every row serves the same app (examples/flask-app, gunicorn gthread 2x4) built once as v1 and v2; "
    "the load runs for the whole row, preparation steps included.",
    "bgci rows: each cycle is `bgci deploy-green` (v2), `verify`, `switch`, `rollback`, the real CLI under "
    "load. From the second cycle on, v2 is quarantined by the previous rollback, so it is redeployed with "
    "`--allow-quarantined` and switched with `--force` (only the refusal check differs).",
    "Decision: the moment `bgci switch` / `rollback` tells the router (a BGCI_TIMINGS mark); for a baseline, "
    "the start of its command. Cut-over: from the decision until every request started afterwards was "
    "answered, successfully, by the new colour. First new / last old: from the start of the command.",
    "p99 around switch: requests started between a command's start and 1 s after it ended.",
    "The load client never retries a request it sent; like urllib3's pool or a browser, it does not send "
    "on a connection the server closed while it was idle (it opens a new one).",
    "Swarm start-first: one node cannot start-first a task that publishes a host-mode port (the new task "
    "waits for the port forever) and the routing mesh does not answer here, so an HAProxy service (the "
    "published port) finds the app's tasks through Swarm's DNS (dnsrr; health checks, retries, redispatch).",
    "Overhead: wall time of the `bgci` process minus its waits on the app (health, confirmation, drain), "
    "the engine (every docker API call) and the router (BGCI_TIMINGS): interpreter start, imports and "
    "bgci's own logic.",
]


def parse(argv: list[str] | None) -> argparse.Namespace:
    keys = [r.key for r in ROWS] + [b.key for b in BASELINES] + [c.key for c in CHANGES] + ["dns"]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: 1 cycle, scale 1,2, 5 --help runs (a smoke run, not a result)")
    p.add_argument("--cycles", type=int, help=f"switch + rollback cycles per row (default {DEFAULT_CYCLES})")
    p.add_argument("--rows", default=",".join(keys), help=f"comma-separated subset of: {', '.join(keys)}")
    p.add_argument("--scale", help="apps deployed at once for the cost-growth part (default 1,4,16; "
                   "'' skips it)")
    p.add_argument("--scale-on", choices=("apps", "replicas"), default="apps",
                   help="grow the number of apps on docker (default) or of replicas on Swarm")
    p.add_argument("--connections", type=int, default=8, help="keep-alive clients (default 8)")
    p.add_argument("--rate", type=float, default=25.0, help="requests/s per client (default 25)")
    p.add_argument("--gap", type=float, help="seconds between a switch and the next step (default 0.5)")
    p.add_argument("--help-runs", type=int, help="`bgci --help` runs (default 30)")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="results dir (default bench/results)")
    p.add_argument("--keep-work", action="store_true", help="keep the work dir (raw load records, reports)")
    args = p.parse_args(argv)
    quick = args.quick
    args.cycles = args.cycles or (1 if quick else DEFAULT_CYCLES)
    args.scale = args.scale if args.scale is not None else ("1,2" if quick else "1,4,16")
    args.sizes = [int(x) for x in args.scale.split(",") if x.strip() and int(x) > 0]
    args.gap = args.gap if args.gap is not None else 0.5
    args.help_runs = args.help_runs or (5 if quick else 30)
    args.selected = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = set(args.selected) - set(keys)
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; choose from {keys}")
    return args


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def machine(client: Any) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD")
    if git("status", "--porcelain", "--", "bgci"):
        commit += " with uncommitted changes in bgci/"
    from bgci import __version__

    os_name = platform.platform()
    with contextlib.suppress(OSError, KeyError):
        os_name = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
                       if "=" in line)["PRETTY_NAME"].strip('"')
    return {"cpus": os.cpu_count(), "cpu": cpu, "os": os_name, "kernel": platform.release(),
            "python": platform.python_version(), "bgci": __version__, "commit": commit or "?",
            "docker": client.version().get("Version") if client is not None else None}


def build(ctx: Context, args: argparse.Namespace, rows: list[Row]) -> dict[str, list[dict[str, Any]]]:
    builds: dict[str, list[dict[str, Any]]] = {}
    baselines = [b for b in BASELINES if b.key in args.selected]
    changes = [c for c in CHANGES if c.key in args.selected]
    if ctx.client is not None and (any(r.platform != "process" for r in rows) or baselines or changes
                                   or args.sizes):
        say("building the app's images v1 and v2 with `bgci build` (docker)")
        try:
            ctx.images, calls = build_docker_images(ctx.work, ctx.res, f"bench-build-{ctx.run_id}")
            builds["docker"] = [c.summary() for c in calls]
        except BgciFailed as exc:
            ctx.notes.append(f"docker images not built: {exc}")
    if any(r.platform == "process" for r in rows) or "dns" in args.selected:
        say("building the app's releases v1 and v2 with `bgci build` (process platform)")
        try:
            ctx.releases, calls = build_process_releases(ctx.work, ctx.res, f"bench-build-{ctx.run_id}",
                                                         ctx.state_dir)
            builds["process"] = [c.summary() for c in calls]
        except BgciFailed as exc:
            ctx.notes.append(f"process releases not built: {exc}")
    return builds


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    work = Path(tempfile.mkdtemp(prefix="bgci-bench-"))
    res = Resources(client=docker_client())
    ctx = Context(run_id=uuid.uuid4().hex[:6], work=work, res=res, cycles=args.cycles,
                  connections=args.connections, rate=args.rate, gap=args.gap, state_dir=work / "state")
    results: dict[str, Any] = {
        "run_id": ctx.run_id, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "command": shlex.join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {"cycles": args.cycles, "connections": args.connections, "rate": args.rate,
                     "gap_s": args.gap, "rows": args.selected, "scale": args.sizes, "quick": args.quick},
        "machine": machine(res.client), "load_average": {"start": loadavg()}, "rows": [],
        "method": METHOD, "notes": ctx.notes,
    }
    if res.client is None:
        ctx.notes.append("no Docker engine: the docker rows, the baselines and the scale part were skipped")
    say(f"work dir {work}; load average {results['load_average']['start']}")
    rows = [r for r in ROWS if r.key in args.selected]
    code = 0
    try:
        with interruptible():
            builds = build(ctx, args, rows)
            results["builds"] = builds
            for row in rows:
                reason = unavailable(row, ctx)
                if reason:
                    results["rows"].append({"name": row.name, "kind": "bgci", "skipped": reason})
                    say(f"{row.name}: skipped: {reason}")
                    continue
                results["rows"].append(run_row(row, ctx))
            for cls in BASELINES:
                if cls.key in args.selected:
                    results["rows"].append(run_baseline(cls, ctx))
            changes = [c for c in CHANGES if c.key in args.selected]
            if changes:
                results["method"] = METHOD + CHANGES_METHOD
                results["changes"] = [run_change(c, ctx) for c in changes]
            if "dns" in args.selected:
                results["method"] = results["method"] + DNS_METHOD
                results["dns"] = run_dns(ctx, TTLS[:1] if args.quick else TTLS)
            results["overhead"] = overhead(results["rows"], builds)
            say(f"`bgci --help` cold start, {args.help_runs} runs")
            try:
                results["help"] = help_cold_start(args.help_runs)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                ctx.notes.append(f"`bgci --help` not timed: {exc}")
            if args.sizes and ctx.images:
                grow = scale_replicas if args.scale_on == "replicas" else scale
                results["scale"] = grow(ctx, args.sizes, SCALE_ROWS[args.scale_on])
    except KeyboardInterrupt:
        say("interrupted: stopping everything the benchmark started")
        code = 130
    except Exception as exc:  # a bug or a broken engine: still stop everything, still write results
        traceback.print_exc()
        ctx.notes.append(f"the run stopped early: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        problems = res.cleanup()
        results["cleanup_problems"] = problems
        for problem in problems:
            say(f"cleanup: {problem}")
        if not args.keep_work:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    results["load_average"]["end"] = loadavg()
    results["seconds"] = round(time.time() - started, 1)
    results["targets"] = report.targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "latest.md").write_text(report.markdown(results), encoding="utf-8")
    if not report.chart(results, args.out / "latest.png"):
        say("no chart: no row was measured, or no matplotlib (pip install 'bgci[bench]')")
    say(f"done in {results['seconds'] / 60:.1f} min: {args.out / (stamp + '.json')}, "
        f"{args.out / 'latest.md'}, {args.out / 'latest.png'}")
    print(report.markdown(results))
    return code or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
