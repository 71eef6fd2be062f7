"""A switch or rollback as a picture: the timeline a stage's watch recorded (``extra.timeline``,
see ``bgci.stages.watch``), drawn as a self-contained SVG, and as a Mermaid ``xychart-beta``
block for GitHub's step summary (which renders it natively).

The SVG carries its data too, for machines: each colour's line has ``data-colour``, ``data-t0``
(epoch seconds of its first step), ``data-step`` (seconds) and ``data-counts`` (the requests of
each step, space-separated), so a reader never has to measure pixels.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

COLOURS = {"blue": "#1f6feb", "green": "#2da44e"}
ERROR = "#cf222e"
WIDTH, HEIGHT = 960, 380
LEFT, RIGHT = 84, 24
TOP, MID, BOTTOM = 60, 256, 340  # requests panel from TOP to MID; response times below
MERMAID_POINTS = 40


def svg(timeline: dict[str, Any], title: str) -> str:
    """The timeline as an SVG document: requests per colour per step through the router, the
    5xx answers, the response time, the marks (decision, cut-over, ...) and windows (bake)."""
    series: dict[str, dict[str, list[Any]]] = timeline.get("series") or {}
    step = float(timeline.get("step") or 0.1)
    steps = max((len(s.get("requests") or []) for s in series.values()), default=0) or 1
    span = steps * step
    zero = _zero(timeline)
    plot_w = WIDTH - LEFT - RIGHT

    def x(seconds: float) -> float:
        return LEFT + plot_w * max(0.0, min(1.0, seconds / span))

    top = max([max(s.get("requests") or [0]) for s in series.values()] + [1.0])
    top = _nice(top)
    latencies = [v for s in series.values() for v in (s.get("latency_ms") or []) if v is not None]
    slowest = _nice(max([*latencies, 1.0]))

    def y(count: float) -> float:
        return MID - (MID - TOP) * count / top

    def y_ms(ms: float) -> float:
        return BOTTOM - (BOTTOM - MID - 20) * ms / slowest

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11" '
           f'class="bgci-timeline" data-t0="{timeline.get("t0", 0)}" data-step="{step}">',
           f"<title>{escape(title)}</title>",
           f"<desc>{escape(_description(timeline))}</desc>",
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    for window in timeline.get("windows") or []:
        a, b = x(float(window["from"])), x(float(window["to"]))
        shade = "#fff8c5" if window["name"] == "bake" else "#f6f8fa"
        out.append(f'<rect class="window" data-name="{escape(window["name"])}" x="{a:.1f}" '
                   f'y="{TOP}" width="{max(1.0, b - a):.1f}" height="{BOTTOM - TOP}" '
                   f'fill="{shade}"/>')
        out.append(f'<text x="{a + 3:.1f}" y="{TOP + 12}" fill="#6e7781">'
                   f'{escape(window["name"])}</text>')
    out += _axes(x, y, y_ms, top, slowest, span, zero, timeline)
    for colour, data in series.items():
        counts = [float(v) for v in data.get("requests") or []]
        errors = [float(v) for v in data.get("errors") or []]
        stroke = COLOURS.get(colour, "#57606a")
        for i, count in enumerate(errors):
            if count > 0:
                out.append(f'<rect class="errors" data-colour="{colour}" x="{x(i * step):.1f}" '
                           f'y="{y(count):.1f}" width="{max(1.0, x(step) - LEFT):.1f}" '
                           f'height="{MID - y(count):.1f}" fill="{ERROR}" opacity="0.8"/>')
        points = " ".join(f"{x((i + 0.5) * step):.1f},{y(v):.1f}" for i, v in enumerate(counts))
        out.append(f'<polyline class="series" data-colour="{colour}" data-t0="{timeline.get("t0", 0)}" '
                   f'data-step="{step}" data-counts="{" ".join(_num(v) for v in counts)}" '
                   f'data-errors="{" ".join(_num(v) for v in errors)}" points="{points}" '
                   f'fill="none" stroke="{stroke}" stroke-width="1.6"/>')
        latency = data.get("latency_ms") or []
        for run in _runs(latency):
            line = " ".join(f"{x((i + 0.5) * step):.1f},{y_ms(float(latency[i])):.1f}" for i in run)
            out.append(f'<polyline class="latency" data-colour="{colour}" points="{line}" '
                       f'fill="none" stroke="{stroke}" stroke-width="1.2" stroke-dasharray="4 2"/>')
    for i, mark in enumerate(timeline.get("marks") or []):
        at = x(float(mark["t"]))
        out.append(f'<line class="mark" data-name="{escape(mark["name"])}" x1="{at:.1f}" '
                   f'y1="{TOP - 4}" x2="{at:.1f}" y2="{BOTTOM}" stroke="#24292f" '
                   f'stroke-dasharray="2 2"/>')
        # close marks (decision, cut-over, confirmed) get a row each
        out.append(f'<text x="{at + 2:.1f}" y="{TOP - 6 - 11 * (i % 3)}" fill="#24292f">'
                   f'{escape(mark["name"])}</text>')
    out += _legend(series, timeline)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _axes(x: Any, y: Any, y_ms: Any, top: float, slowest: float, span: float, zero: float,
          timeline: dict[str, Any]) -> list[str]:
    out = [f'<line x1="{LEFT}" y1="{MID}" x2="{WIDTH - RIGHT}" y2="{MID}" stroke="#8c959f"/>',
           f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{WIDTH - RIGHT}" y2="{BOTTOM}" stroke="#8c959f"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="#8c959f"/>']
    for fraction in (0.5, 1.0):
        out.append(f'<text x="{LEFT - 4}" y="{y(top * fraction) + 4:.1f}" text-anchor="end">'
                   f"{_num(top * fraction)}</text>")
        out.append(f'<text x="{LEFT - 4}" y="{y_ms(slowest * fraction) + 4:.1f}" '
                   f'text-anchor="end">{_num(slowest * fraction)}</text>')
    out.append(f'<text x="6" y="{(TOP + MID) / 2:.0f}" fill="#57606a">req/'
               f'{int(float(timeline.get("step") or 0.1) * 1000)}ms</text>')
    kind = timeline.get("latency_kind") or "p95"
    out.append(f'<text x="6" y="{(MID + BOTTOM) / 2 + 10:.0f}" fill="#57606a">{escape(kind)} ms'
               "</text>")
    tick = _nice(span / 8)
    first = math.ceil(-zero / tick)
    for n in range(first, first + int(span / tick + 1e-9) + 2):
        value = round(n * tick, 6)  # a multiple of the tick: no float drift such as 5.6e-17
        if value + zero > span + 1e-9:
            break
        at = x(value + zero)
        out.append(f'<line x1="{at:.1f}" y1="{BOTTOM}" x2="{at:.1f}" y2="{BOTTOM + 4}" '
                   'stroke="#8c959f"/>')
        out.append(f'<text x="{at:.1f}" y="{BOTTOM + 16}" text-anchor="middle">'
                   f"{'0' if n == 0 else f'{value:+g}'}s</text>")
    return out


def _legend(series: dict[str, Any], timeline: dict[str, Any]) -> list[str]:
    out, at = [], LEFT
    for colour in series:
        out.append(f'<rect x="{at}" y="{HEIGHT - 16}" width="12" height="3" '
                   f'fill="{COLOURS.get(colour, "#57606a")}"/>')
        out.append(f'<text x="{at + 16}" y="{HEIGHT - 11}">{escape(colour)} requests '
                   f"(dashed: {escape(timeline.get('latency_kind') or 'p95')})</text>")
        at += 230
    out.append(f'<rect x="{at}" y="{HEIGHT - 20}" width="10" height="10" fill="{ERROR}"/>')
    out.append(f'<text x="{at + 14}" y="{HEIGHT - 11}">5xx</text>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 11}" text-anchor="end" fill="#57606a">'
               f"{escape(timeline.get('source') or 'no router counters')}</text>")
    return out


def _description(timeline: dict[str, Any]) -> str:
    marks = ", ".join(f"{m['name']} at {m['t']:.2f}s" for m in timeline.get("marks") or [])
    totals = ", ".join(f"{colour}: {sum(float(v) for v in data.get('requests') or []):.0f} "
                       f"requests, {sum(float(v) for v in data.get('errors') or []):.0f} 5xx"
                       for colour, data in (timeline.get("series") or {}).items())
    return (f"Requests through the router per {timeline.get('step')} s from "
            f"{timeline.get('source') or 'no counters'}: {totals}. {marks}.")


def _zero(timeline: dict[str, Any]) -> float:
    """Seconds from the first step to the decision: the axis counts from there."""
    marks = timeline.get("marks") or []
    found = [float(m["t"]) for m in marks if m["name"] in ("decision", "rollback")]
    return found[0] if found else 0.0


def _runs(values: list[Any]) -> list[list[int]]:
    """Indexes of the stretches without a gap (None) in ``values``."""
    runs: list[list[int]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(i)
    return [run for run in runs if run]


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(m * power) for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else str(int(value))


# -- GitHub's step summary --------------------------------------------------------------------
def mermaid(timeline: dict[str, Any], title: str) -> str:
    """The timeline as a fenced Mermaid ``xychart-beta``: requests per second per colour (lines),
    and the 5xx answers (bars), at most MERMAID_POINTS points from the decision on."""
    series: dict[str, dict[str, list[Any]]] = timeline.get("series") or {}
    step = float(timeline.get("step") or 0.1)
    steps = max((len(s.get("requests") or []) for s in series.values()), default=0)
    if not steps:
        return ""
    per = max(1, math.ceil(steps / MERMAID_POINTS))
    zero = _zero(timeline)
    labels = [f'"{(i * step - zero):+.1f}"' for i in range(0, steps, per)]

    def rate(values: list[Any]) -> list[str]:
        sums = [sum(float(v) for v in values[i:i + per]) for i in range(0, steps, per)]
        return [_num(round(s / (per * step), 1)) for s in sums]

    names = list(series)
    errors = [sum(float(series[c]["errors"][i]) for c in names if i < len(series[c]["errors"]))
              for i in range(steps)]
    palette = ", ".join([COLOURS.get(c, "#57606a") for c in names] + [ERROR])
    lines = ["```mermaid",
             f'%%{{init: {{"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%',
             "xychart-beta",
             f'    title "{title.replace(chr(34), chr(39))}"',
             f'    x-axis "seconds from the decision" [{", ".join(labels)}]',
             '    y-axis "requests per second"']
    lines += [f"    line [{', '.join(rate(series[c]['requests']))}]" for c in names]
    lines.append(f"    bar [{', '.join(rate(errors))}]")
    lines.append("```")
    legend = ", ".join(f"{c} requests" for c in names)
    return "\n".join(lines) + f"\n\nLines: {legend}; bars: 5xx answers per second.\n"
