"""The switch as a picture: the watch's timeline as an SVG a machine can read back, a Mermaid
block for GitHub's summary, the JUnit attachment line and the self-contained report.html."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bgci.ci.github import summary
from bgci.model import Check, StageResult
from bgci.ports import Counters, Traffic
from bgci.report import write_reports
from bgci.report.timeline import mermaid, svg
from bgci.stages.watch import Watch

SVG = "{http://www.w3.org/2000/svg}"


class CountingRouter:
    """A router whose counters grow by a known amount per reading: 3 to blue until the switch,
    then 4 to green, one of them a 5xx."""

    def __init__(self) -> None:
        self.live = "blue"
        self.blue = self.green = self.errors = 0

    def counters(self) -> Counters:
        if self.live == "blue":
            self.blue += 3
        else:
            self.green += 4
            self.errors += 1
        return Counters(time.time(), {"blue": Traffic(self.blue), "green": Traffic(
            self.green, self.errors)}, "a counting router")


def recorded() -> tuple[dict[str, object], CountingRouter]:
    router = CountingRouter()
    watch = Watch(router).start()  # type: ignore[arg-type]
    time.sleep(0.5)
    watch.mark("decision")
    router.live = "green"
    watch.mark("cut-over")
    watch.begin("bake")
    time.sleep(0.5)
    watch.end("bake")
    watch.stop()
    return watch.timeline(), router


def test_the_svg_carries_each_colours_counts_and_the_moments() -> None:
    timeline, router = recorded()
    root = ET.fromstring(svg(timeline, "bgci switch of shop: passed"))
    lines = {p.get("data-colour"): p for p in root.iter(f"{SVG}polyline")
             if p.get("class") == "series"}
    assert set(lines) == {"blue", "green"}
    drawn = {c: sum(float(v) for v in p.get("data-counts", "").split()) for c, p in lines.items()}
    # everything counted after the first reading (the baseline) is drawn, none twice
    # (each step's count is rounded to 1/100)
    assert abs(drawn["blue"] - (router.blue - 3)) < 0.1, (drawn, router.blue)
    assert abs(drawn["green"] - router.green) < 0.1, (drawn, router.green)
    errors = sum(float(v) for v in lines["green"].get("data-errors", "").split())
    assert abs(errors - router.errors) < 0.1
    marks = [m.get("data-name") for m in root.iter(f"{SVG}line") if m.get("class") == "mark"]
    assert marks == ["decision", "cut-over"]
    assert [r.get("data-name") for r in root.iter(f"{SVG}rect")
            if r.get("class") == "window"] == ["bake"]
    assert float(lines["blue"].get("data-step", "0")) == 0.1


def test_mermaid_draws_requests_per_second_for_githubs_summary() -> None:
    timeline, _ = recorded()
    block = mermaid(timeline, "switch: requests per colour")
    assert block.startswith("```mermaid") and "xychart-beta" in block
    series = [line for line in block.splitlines() if line.strip().startswith(("line", "bar"))]
    assert len(series) == 3  # blue, green, 5xx
    points = series[0].count(",") + 1
    assert 2 <= points <= 40


def test_a_stage_with_a_timeline_attaches_it_and_the_summary_draws_it(tmp_path: Path) -> None:
    timeline, _ = recorded()
    result = StageResult(stage="switch", app="shop", live_colour="green",
                         checks=[Check("switch confirmation", "passed", 0.1, "20/20")],
                         extra={"timeline": timeline})
    paths = write_reports(result, tmp_path, {"app": "shop"})
    picture = tmp_path.resolve() / "switch-timeline.svg"
    assert picture in paths and picture.is_file()
    out = ET.parse(paths[0]).getroot().find(".//testsuite/system-out")
    assert out is not None and f"[[ATTACHMENT|{picture}]]" in (out.text or "").splitlines()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and 'id="stages"' in page and "http" not in page.replace(
        "http://www.w3.org/2000/svg", ""), "self-contained: no external asset"
    assert "```mermaid" in summary(result, {})


def test_report_html_lists_every_stage_of_the_run(tmp_path: Path) -> None:
    for stage, status in (("deploy-green", "passed"), ("verify", "passed"), ("switch", "failed")):
        write_reports(StageResult(stage=stage, app="shop", status=status,  # type: ignore[arg-type]
                                  message=f"{stage} said so"), tmp_path, {})
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    table = page[page.index('id="stages"'):page.index("</table>")]
    assert [s for s in ("deploy-green", "verify", "switch") if f">{s}</a>" in table] == [
        "deploy-green", "verify", "switch"]
    assert "switch said so" in table


def test_the_time_axis_reads_as_a_person_would_write_it() -> None:
    # a decision 0.93 s into the watch: ticks every 0.2 s to the left of it once added up to
    # -5.55112e-17 where "0" belonged
    timeline = {"t0": 0.0, "step": 0.1, "source": "a router", "latency_kind": "p95",
                "series": {"blue": {"requests": [40.0] * 14, "errors": [0.0] * 14,
                                    "latency_ms": [3.0] * 14}},
                "marks": [{"name": "decision", "t": 0.93}, {"name": "cut-over", "t": 1.12}]}
    root = ET.fromstring(svg(timeline, "bgci switch of shop: passed"))
    ticks = [t.text for t in root.iter(f"{SVG}text") if (t.text or "").endswith("s")
             and (t.text or "")[:1] in "+-0"]
    assert "0s" in ticks, ticks
    assert all(len(tick) <= 6 for tick in ticks), ticks  # "+0.2s", "-0.8s": no float drift
