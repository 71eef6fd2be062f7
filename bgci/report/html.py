"""``report.html``: one self-contained page (no external asset) about the pipeline's run, written
by every stage into the reports dir: the stages (from each ``<stage>.json`` there), their checks,
the latest switch's or rollback's timeline, the live colour and the history."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from bgci.model import StageResult
from bgci.report.timeline import svg

NAME = "report.html"
STATUS = {"passed": "#2da44e", "failed": "#cf222e", "error": "#8250df", "refused": "#bc4c00",
          "skipped": "#6e7781"}
_CSS = """
body { font-family: -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #24292f; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top;
         font-size: 13px; }
th { background: #f6f8fa; }
.badge { color: #fff; border-radius: 10px; padding: 1px 8px; font-size: 12px; }
.live { font-size: 15px; margin: 8px 0; }
.colour-blue { color: #1f6feb; font-weight: bold; } .colour-green { color: #2da44e; font-weight: bold; }
pre { background: #f6f8fa; padding: 6px; white-space: pre-wrap; font-size: 12px; max-height: 240px;
      overflow: auto; }
.timeline { border: 1px solid #d0d7de; display: inline-block; }
"""


def results_in(reports: Path, current: StageResult) -> list[dict[str, Any]]:
    """The stages whose reports are in ``reports`` (the current one as it is now), by start."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(reports.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("stage") == path.stem and data.get("app") in (
                current.app, ""):
            found[path.stem] = data
    found[current.stage] = current.to_dict()
    return sorted(found.values(), key=lambda d: str(d.get("started") or ""))


def render(current: StageResult, stages: list[dict[str, Any]]) -> str:
    """The page: live colour, the stage table, each stage's checks, a timeline, the history."""
    live = current.live_colour
    timed = [s for s in stages if (s.get("extra") or {}).get("timeline")]
    latest = max(timed, key=lambda s: str(s.get("started") or "")) if timed else None
    history = _history(stages)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>bgci {escape(current.app)}: {escape(current.stage)} {escape(current.status)}"
        "</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>bgci: {escape(current.app)}</h1>",
        '<p class="live">live colour: '
        + (f'<span class="colour-{live}">{live}</span>' if live else "<b>not served</b>")
        + (f" &middot; {escape(current.image)}" if current.image else "") + "</p>",
        "<h2>Stages</h2>",
        '<table id="stages"><tr><th>stage</th><th>status</th><th>exit</th><th>started</th>'
        "<th>checks</th><th>message</th></tr>",
    ]
    for stage in stages:
        status = str(stage.get("status") or "")
        checks = stage.get("checks") or []
        passed = sum(1 for c in checks if c.get("outcome") in ("passed", "skipped"))
        parts.append(
            f"<tr><td><a href=\"#{escape(str(stage['stage']))}\">{escape(str(stage['stage']))}</a>"
            f"</td><td>{_badge(status)}</td><td>{stage.get('exit_code', '')}</td>"
            f"<td>{escape(str(stage.get('started') or ''))}</td><td>{passed}/{len(checks)}</td>"
            f"<td>{escape(str(stage.get('message') or ''))[:400]}</td></tr>")
    parts.append("</table>")
    if latest is not None:
        title = (f"bgci {latest['stage']} of {latest.get('app')}: {latest.get('status')}"
                 + (f" (live: {latest['live_color']})" if latest.get("live_color") else ""))
        parts += [f"<h2>Timeline of {escape(str(latest['stage']))}</h2>",
                  f'<div class="timeline" id="timeline">{svg(latest["extra"]["timeline"], title)}'
                  "</div>"]
        figures = (latest.get("extra") or {}).get("bake")
        if figures:
            parts.append("<p>bake: " + escape(", ".join(f"{k} {v}" for k, v in figures.items()))
                         + "</p>")
    for stage in stages:
        parts.append(f"<h2 id=\"{escape(str(stage['stage']))}\">{escape(str(stage['stage']))} "
                     f"{_badge(str(stage.get('status') or ''))}</h2>")
        parts.append("<table><tr><th>check</th><th>outcome</th><th>seconds</th><th>message</th>"
                     "</tr>")
        for check in stage.get("checks") or []:
            output = str(check.get("output") or "")
            detail = f"<pre>{escape(output[-4000:])}</pre>" if output else ""
            parts.append(f"<tr><td>{escape(str(check.get('name')))}</td>"
                         f"<td>{_badge(str(check.get('outcome')))}</td>"
                         f"<td>{float(check.get('seconds') or 0):.2f}</td>"
                         f"<td>{escape(str(check.get('message') or ''))}{detail}</td></tr>")
        parts.append("</table>")
    if history:
        parts += ["<h2>History</h2>", "<table id=\"history\"><tr><th>at</th><th>stage</th>"
                  "<th>change</th><th>outcome</th><th>who</th></tr>"]
        parts += [f"<tr><td>{escape(str(h.get('at', '')))}</td><td>{escape(str(h.get('stage', '')))}"
                  f"</td><td>{escape(str(h.get('change', '')))}</td><td>"
                  f"{escape(str(h.get('outcome', '')))}</td><td>{escape(str(h.get('who', '')))}"
                  "</td></tr>" for h in reversed(history[-20:])]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _badge(status: str) -> str:
    return (f'<span class="badge" style="background:{STATUS.get(status, "#57606a")}">'
            f"{escape(status)}</span>")


def _history(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest history any stage of the run carries (status: all of it; switch, rollback:
    their last entries)."""
    newest: list[dict[str, Any]] = []
    for stage in stages:
        extra = stage.get("extra") or {}
        found = extra.get("history") or (extra.get("status") or {}).get("history") or []
        if isinstance(found, list) and found and (not newest or str(found[-1].get("at", ""))
                                                  >= str(newest[-1].get("at", ""))):
            newest = [h for h in found if isinstance(h, dict)]
    return newest
