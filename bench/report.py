"""The benchmark's results as a Markdown table, the targets we publish, and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {
    "lost": "0 requests lost in every bgci row",
    "cutover": "switch to 100% new colour within 100 ms of the command's decision",
    "help": "`bgci --help` under 150 ms",
    "overhead": "bgci overhead per stage under 1 s",
}
CUTOVER_MS, HELP_MS, OVERHEAD_S = 100.0, 150.0, 1.0
IMPORT_LABELS = {"import_docker_stage": "import bgci.cli + docker platform + haproxy router + switch stage",
                 "import_process_stage": "import bgci.cli + process platform + traefik router + switch stage",
                 "import_paramiko": "import paramiko (the docker SDK's ssh:// transport: bgci loads it "
                                    "for ssh:// engines only)"}


def _f(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def bgci_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in results["rows"] if r["kind"] == "bgci" and "sent" in r]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: what was achieved, met or not, and by how much it was missed."""
    out = []
    rows = bgci_rows(results)
    lossy = [f"{r['name']}: {r['lost']}" for r in rows if r["lost"]]
    if rows:
        out.append({"target": TARGETS["lost"], "met": not lossy,
                    "missed_by": None if not lossy else
                    f"{sum(r['lost'] for r in rows)} requests in {len(lossy)} of {len(rows)} rows",
                    "achieved": ("; ".join(lossy) if lossy else
                                 f"0 of {sum(r['sent'] for r in rows):,} requests lost over "
                                 f"{len(rows)} rows")})
    worst = []
    for r in rows:
        for name in ("switch", "rollback"):
            m = r["latency"][name]["cutover_ms"]["max"]
            if m is not None:
                worst.append((m, f"{r['name']} {name}", r["latency"][name]["cutover_ms"]["median"]))
    if worst:
        m, where, _ = max(worst)
        per_row: dict[str, float] = {}
        for m_, w, _ in worst:
            row_name = w.rsplit(" ", 1)[0]
            per_row[row_name] = max(per_row.get(row_name, 0.0), m_)
        medians = ", ".join(f"{name} {_f(v)}" for name, v in per_row.items())
        cuts = [e["cutover_ms"] for r in rows for e in r["events"] if e["cutover_ms"] is not None]
        within = sum(1 for c in cuts if c <= CUTOVER_MS)
        out.append({"target": TARGETS["cutover"], "met": m <= CUTOVER_MS,
                    "achieved": f"{within} of {len(cuts)} switches and rollbacks within {CUTOVER_MS:.0f} ms; "
                                f"worst {_f(m)} ms ({where}); worst per row, ms: {medians}",
                    "missed_by": None if m <= CUTOVER_MS else
                    f"{_f(m - CUTOVER_MS)} ms ({m / CUTOVER_MS:.1f}x)"})
    help_ms = (results.get("help") or {}).get("bgci_help", {}).get("mean_ms")
    if help_ms is not None:
        floor = results["help"]["python_floor"]["mean_ms"]
        out.append({"target": TARGETS["help"], "met": help_ms <= HELP_MS,
                    "achieved": f"{_f(help_ms)} ms mean (the interpreter alone: {_f(floor)} ms)",
                    "missed_by": None if help_ms <= HELP_MS else
                    f"{_f(help_ms - HELP_MS)} ms ({help_ms / HELP_MS:.1f}x)"})
    over = [o for o in results.get("overhead", []) if o["stage"] != "build"]
    if over:
        worst_o = max(over, key=lambda o: o["overhead_s"])
        worst_max = max(over, key=lambda o: o["overhead_max_s"])
        out.append({"target": TARGETS["overhead"], "met": worst_o["overhead_s"] <= OVERHEAD_S,
                    "achieved": (f"worst median {worst_o['overhead_s']:.2f} s ({worst_o['row']} "
                                 f"{worst_o['stage']}); worst single call "
                                 f"{worst_max['overhead_max_s']:.2f} s "
                                 f"({worst_max['row']} {worst_max['stage']})"),
                    "missed_by": None if worst_o["overhead_s"] <= OVERHEAD_S else
                    f"{worst_o['overhead_s'] - OVERHEAD_S:.2f} s"})
    return out


def rows_tables(results: dict[str, Any]) -> list[str]:
    """The rows' tables: requests lost, then switch and rollback latency."""
    lines = [
        "",
        "## Requests lost during switch + rollback cycles",
        "",
        "| row | cycles | requests | lost | lost % | p50 ms | p99 ms | p99 around switch ms "
        "| cut-over after decision, median / max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        if "sent" not in r:
            continue
        cut = [r["latency"][n]["cutover_ms"] for n in ("switch", "rollback")]
        med = max((c["median"] for c in cut if c["median"] is not None), default=None)
        mx = max((c["max"] for c in cut if c["max"] is not None), default=None)
        pct = 100 * r["lost"] / r["sent"] if r["sent"] else 0.0
        lines.append(f"| {r['name']} | {r['cycles']} | {r['sent']:,} | **{r['lost']:,}** | {pct:.2f} "
                     f"| {_f(r['p50_ms'], 1)} | {_f(r['p99_ms'], 1)} | {_f(r['p99_around_switch_ms'], 1)} "
                     f"| {_f(med)} / {_f(mx)} |")
    skipped = [r for r in results["rows"] if "sent" not in r]
    for r in skipped:
        lines.append(f"\n- {r['name']}: not measured: {r.get('skipped') or r.get('failure', '')[:300]}")
    for r in results["rows"]:
        if r.get("lost_during"):
            where = "; ".join(
                f"{x['error'].split(':')[0]} {'during' if x['during'] else 'after'} {x['stage']}"
                + (f" ({x['seconds_after_decision'] * 1000:+.0f} ms from its decision)"
                   if x["seconds_after_decision"] is not None else "")
                for x in r["lost_during"][:6])
            lines.append(f"\n- {r['name']}: lost {where}")
    failed = [r for r in results["rows"] if "sent" in r and r.get("failure")]
    for r in failed:
        lines.append(f"\n- {r['name']}: stopped early: {r['failure'][:300]}")
    lines += [
        "",
        "## Switch and rollback latency (median over the cycles, ms from the start of the command)",
        "",
        "| row | switch: decision | first new | last old | command | rollback: decision | first new "
        "| last old | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        if "sent" not in r:
            continue
        cells = []
        for n in ("switch", "rollback"):
            lat = r["latency"][n]
            keys = ("decision_ms", "first_new_ms", "last_old_ms", "command_ms")
            cells += [_f(lat[k]["median"]) for k in keys]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    m = results["machine"]
    la = results["load_average"]
    lines = [
        f"# bgci benchmark: {results['started']}",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['os']}, Python {m['python']}, docker {m['docker']}; "
        f"load average (1/5/15 min) {' / '.join(map(str, la['start']))} at the start, "
        f"{' / '.join(map(str, la['end']))} at the end. bgci {m['bgci']} ({m['commit']}).",
        f"Load: {s['connections']} keep-alive clients x {s['rate']:g} requests/s each, two `GET /version` "
        "per `POST /echo`, no retries, 5 s timeout, loopback only. "
        f"{s['cycles']} switch + rollback cycles per row; whole run {results['seconds'] / 60:.1f} min "
        f"(`{results['command']}`).",
    ]
    if results["rows"]:  # a run of the everyday changes alone has none
        lines += rows_tables(results)
    lines += ["", "## bgci's own overhead per stage (median wall time minus waits on the app, engine and "
              "router)", "",
              "| stage | row | calls | wall s | waits s | overhead s | worst s |",
              "|---|---|---:|---:|---|---:|---:|"]
    for o in results.get("overhead", []):
        waits = ", ".join(f"{k} {v:.2f}" for k, v in o["waits_s"].items()) or "-"
        lines.append(f"| {o['stage']} | {o['row']} | {o['calls']} | {o['wall_s']:.2f} | {waits} "
                     f"| **{o['overhead_s']:.2f}** | {o['overhead_max_s']:.2f} |")
    h = results.get("help")
    if h:
        lines += ["", f"`bgci --help` cold start ({h['tool']}, {h['runs']} runs): mean "
                  f"**{h['bgci_help']['mean_ms']:.0f} ms**, median {h['bgci_help']['median_ms']:.0f} ms; "
                  f"the interpreter alone (`python -c pass`): {h['python_floor']['mean_ms']:.0f} ms."]
        imports = [(k, v) for k, v in h.items() if k.startswith("import_")]
        if imports:
            lines += ["", "What a stage's process imports before its first line of work (mean of "
                      f"{max(3, h['runs'] // 3)} new processes, interpreter included):", ""]
            lines += [f"- `{IMPORT_LABELS.get(k, k)}`: {v['mean_ms']:.0f} ms" for k, v in imports]
    sc = results.get("scale")
    if sc and sc.get("sizes"):
        unit = sc["unit"]
        what = ("N apps deployed at once, each its own pipeline" if unit == "apps"
                else "one app, N replicas per colour")
        first = sc["sizes"][0]["n"]
        lines += ["", f"## How cost grows ({sc['row']}, {what})", "",
                  f"| {unit} | deploy-green s | switch s | deploy-green + switch s | x vs {first} "
                  f"| x per {unit[:-1]} | per-app deploy-green s | per-app switch s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for e in sc["sizes"]:
            lines.append(f"| {e['n']} | {e['deploy_green_wall_s']:.1f} | {e['switch_wall_s']:.1f} "
                         f"| {e['deploy_green_plus_switch_s']:.1f} | {_f(e['ratio_vs_first'], 2)} "
                         f"| {_f(e['ratio_per_unit'], 2)} | {_f(e.get('per_app_deploy_green_s'), 1)} "
                         f"| {_f(e.get('per_app_switch_s'), 1)} |")
        for e in sc["sizes"]:
            for app, why in (e.get("failed_pipelines") or {}).items():
                lines.append(f"\n- at {e['n']} {unit}: the pipeline of {app} failed ({why})")
        if sc.get("failure"):
            lines.append(f"\nstopped early: {sc['failure'][:300]}")
    lines += changes_markdown(results)
    lines += dns_markdown(results)
    lines += ["", "## Targets", "", "| target | achieved | met |", "|---|---|---|"]
    for t in results.get("targets", []):
        verdict = "yes" if t["met"] else f"**no**, missed by {t.get('missed_by') or 'see achieved'}"
        lines.append(f"| {t['target']} | {t['achieved']} | {verdict} |")
    if results.get("method"):
        lines += ["", "## Method", ""] + [f"- {n}" for n in results["method"]]
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def dns_markdown(results: dict[str, Any]) -> list[str]:
    """The DNS row (bench/dns_switch.py): lost requests and time to 100% new connections, per TTL."""
    dns = results.get("dns")
    if not dns:
        return []
    lines = ["", "## DNS switch (router.kind = \"dns\", process platform, through a caching resolver)",
             ""]
    if dns.get("skipped"):
        return [*lines, f"Not measured: {dns['skipped']}."]
    lines += ["| TTL | cut-overs | requests | lost | every new connection on the new colour after, "
              "median / max s | within TTL + 1 s | switch or rollback wall, median s |",
              "|---:|---:|---:|---:|---|---|---:|"]
    for t in dns["ttls"]:
        if "failure" in t:
            lines.append(f"| {t['ttl_s']} s | failed: {t['failure'][:200]} | | | | | |")
            continue
        lines.append(f"| {t['ttl_s']} s | {t['cutovers']} | {t['requests']:,} | **{t['lost']}** | "
                     f"{t['to_all_new_median_s']} / {t['to_all_new_max_s']} | "
                     f"{'yes' if t['within_ttl_plus_1'] else '**no**'} | "
                     f"{t['stage_wall_median_s']} |")
    return lines


def _stretch(group: dict[str, Any] | None) -> str:
    if not group:
        return "-"
    ms = group["longest_failing_ms"]
    return f"{_f(ms['median'])} / {_f(ms['max'])}"


def _times(ratio: float | None, hand: int | float, bgci: int | float) -> str:
    if ratio is not None:
        return f"{ratio:g}x"
    return "bgci: 0" if not bgci and hand else "-"


def changes_markdown(results: dict[str, Any]) -> list[str]:
    """The everyday changes (bench/changes.py): one small table each, bgci beside by hand."""
    changes = results.get("changes") or []
    if not changes:
        return []
    lines = ["", "## Everyday changes: a new port, a router upgrade", "",
             "Each side under the same load, one after the other. Longest stretch with failing requests: "
             "the longest time between two successful responses with failed requests sent in between (how "
             "long nobody got an answer); per step, median / max over the cycles."]
    for c in changes:
        lines += ["", f"### {c['name'][0].upper()}{c['name'][1:]}", ""]
        if "bgci" not in c:
            lines.append(f"not measured: {c.get('skipped') or c.get('failure', '')[:300]}")
            continue
        cycles = c.get("cycles", 0)
        lines += ["| side | step | runs | exit codes | requests sent during it | lost "
                  "| longest stretch, ms |", "|---|---|---:|---|---:|---:|---:|"]
        for who, label in (("bgci", "bgci"), ("by_hand", "by hand")):
            side = c.get(who) or {}
            if "sent" not in side:
                lines.append(f"| {label} | not measured: {(side.get('failure') or '')[:200]} | | | | | |")
                continue
            for name, g in side["groups"].items():
                codes = ", ".join(f"{k} ({n})" for k, n in sorted(g["codes"].items())) or "-"
                lines.append(f"| {label} | {STEP_LABELS.get((c['key'], who, name), name)} | {g['runs']} "
                             f"| {codes} | {g['sent']:,} | **{g['lost']:,}** | {_stretch(g)} |")
            lines.append(f"| {label} | **whole side** ({cycles} cycles, load included before and after) | "
                         f"| | {side['sent']:,} | **{side['lost']:,}** | {_f(side['longest_failing_ms'])} |")
        cmp = c.get("comparison") or {}
        b, h = cmp.get("bgci"), cmp.get("by_hand")
        if b and h:
            lines.append("")
            hs, bs = h["longest_failing_ms"], b["longest_failing_ms"]
            lines.append(f"By hand against bgci: {h['lost']:,} requests lost against {b['lost']:,} "
                         f"({_times(cmp.get('ratio_lost'), h['lost'], b['lost'])}); longest stretch "
                         f"{_f(hs)} ms against {_f(bs)} ms "
                         f"({_times(cmp.get('ratio_longest_failing'), hs, bs)}).")
        reboots = (c.get("bgci") or {}).get("reboots") or []
        if reboots:
            cuts = ", ".join(f"{r.get('cut_seconds', 0):.2f} s ({r.get('failed', 0)} of {r.get('probes', 0)})"
                             for r in reboots)
            lines.append("")
            lines.append(f"`bgci router reboot`'s own report (`extra.reboot`: cut, probes failed of sent): "
                         f"{cuts}.")
        ports = (c.get("bgci") or {}).get("ports_recorded")
        if ports:
            lines.append("")
            lines.append("Ports bgci recorded at the end: " + ", ".join(f"{k} {v}" for k, v in ports.items())
                         + ".")
        for who, label in (("bgci", "bgci"), ("by_hand", "by hand")):
            side = c.get(who) or {}
            if side.get("failure") and "sent" in side:
                lines.append(f"\n- {label}: stopped early: {side['failure'][:300]}")
        lost = (c.get("bgci") or {}).get("lost_during") or []
        if lost:
            where = "; ".join(f"{x['error'].split(':')[0]} {'during' if x['during'] else 'after'} "
                              f"{x['stage']}" for x in lost[:6])
            lines.append(f"\n- bgci lost: {where}")
    return lines


# what a group of steps is called in the tables: (change, side, group) -> label
STEP_LABELS = {
    ("port-change", "bgci", "deploy-green"): "`deploy-green` (v2, `--set platform.port=900k`)",
    ("port-change", "bgci", "verify"): "`verify`",
    ("port-change", "bgci", "switch"): "`switch`",
    ("port-change", "bgci", "rollback"): "`rollback`",
    ("port-change", "by_hand", "start the new release"): "`docker run` v2 on :900k, wait until it answers",
    ("port-change", "by_hand", "switch"): "edit haproxy.cfg, `docker restart` HAProxy",
    ("port-change", "by_hand", "rollback"): "edit haproxy.cfg back, `docker restart` HAProxy",
    ("port-change", "by_hand", "remove the new release"): "`docker rm -f` v2",
    ("router-upgrade", "bgci", "refused"): "`deploy-green`, `verify`, `switch`, `rollback` with the new "
                                           "router.image: refused",
    ("router-upgrade", "bgci", "reboot"): "`bgci router reboot`",
    ("router-upgrade", "bgci", "after"): "`deploy-green` after the reboot",
    ("router-upgrade", "by_hand", "reboot"): "`docker rm -f` HAProxy, `docker run` the new image",
}


def chart(results: dict[str, Any], path: Path) -> bool:
    """Requests lost per row, and failures and p99 latency around the decision; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in results["rows"] if "sent" in r]
    if not rows:
        return False
    fig, axes = plt.subplots(3, 1, figsize=(11, 13.5), gridspec_kw={"height_ratios": [1.1, 1, 1]})
    bars, ok_ax, lat_ax = axes
    names = [r["name"] for r in rows]
    lost = [r["lost"] for r in rows]
    colours = ["tab:green" if r["kind"] == "bgci" else "tab:red" for r in rows]
    bars.barh(names, [max(v, 0.5) for v in lost], color=colours)
    bars.set_xscale("log")
    bars.invert_yaxis()
    for i, v in enumerate(lost):
        bars.text(max(v, 0.5) * 1.1, i, f"{v:,} of {rows[i]['sent']:,}", va="center", fontsize=9)
    bars.set_xlim(0.4, max(max(lost) * 8, 10))
    bars.set_title(f"Requests lost over {results['settings']['cycles']} switch + rollback cycles\n"
                   "(green: bgci, red: what users do instead; log scale, 0 drawn at 0.5)")
    for r in rows:
        s = r["series"]
        style = "-" if r["kind"] == "bgci" else "--"
        ok_ax.plot(s["t"], s["ok_per_s"], style, label=r["name"], linewidth=1.4)
        lat_ax.plot(s["t"], s["p99_ms"], style, label=r["name"], linewidth=1.4)
    for ax in (ok_ax, lat_ax):
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("seconds from the decision (bgci: router told to switch; baselines: command start)")
        ax.grid(alpha=0.3)
    offered = results["settings"]["connections"] * results["settings"]["rate"]
    ok_ax.axhline(offered, color="grey", linewidth=0.8, linestyle=":")
    ok_ax.set_ylim(bottom=0)
    ok_ax.set_ylabel(f"successful responses/s (offered {offered:g})")
    ok_ax.set_title("Successful responses around the switch (100 ms bins, mean over switches and rollbacks)")
    ok_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("p99 latency, ms (successful requests)")
    lat_ax.set_title("p99 latency around the switch (by request start; same colours)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
