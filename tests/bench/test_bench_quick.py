"""The benchmark runs whole with tiny sizes: its result files have the published structure, the bgci
row loses no request where stopping and starting a container does, the everyday changes (a new
port, a router upgrade) are measured on both sides, and it leaves nothing behind."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = Path("/var/cache/bgci/env")
HINT = "run `bash scripts/test-env.sh` as root first (it starts dockerd and builds the test images)"
ROWS = ("bgci haproxy (docker)", "stop old, start new (same port)")
CHANGES = ("port-change", "router-upgrade")


def engine_or_fail() -> None:
    import docker

    try:
        client = docker.from_env(timeout=30)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure to reach the engine is the finding
        pytest.fail(f"no docker engine: {exc}; {HINT}", pytrace=False)
    if not ENV_FILE.exists():
        pytest.fail(f"{ENV_FILE} is missing: {HINT}", pytrace=False)


def leftovers(run_id: str) -> list[str]:
    import docker

    client = docker.from_env(timeout=30)
    try:
        # the low-level list: containers.list() inspects each one, racing other tests' removals
        found = [name.lstrip("/") for c in client.api.containers(all=True) for name in c["Names"]
                 if run_id in name]
        found += [n.name for n in client.networks.list() if run_id in n.name]
        found += [v.name for v in client.volumes.list() if run_id in v.name]
        found += [t for i in client.images.list() for t in i.tags if run_id in t]  # the router-upgrade tag
        if (client.info().get("Swarm") or {}).get("ControlAvailable"):
            found += [s.name for s in client.services.list() if run_id in s.name]
            found += [c.name for c in client.configs.list() if run_id in c.name]
        return found
    finally:
        client.close()


def test_the_quick_benchmark_writes_its_results_and_bgci_loses_nothing(tmp_path: Path) -> None:
    engine_or_fail()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--rows",
         ",".join(("haproxy", "stop-start", *CHANGES)), "--scale", "", "--help-runs", "2",
         "--out", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=420, check=False)
    output = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, output

    results_files = sorted(tmp_path.glob("*.json"))
    assert len(results_files) == 1, output
    results = json.loads(results_files[0].read_text())
    assert results["settings"]["cycles"] == 1 and results["settings"]["quick"] is True
    assert len(results["load_average"]["start"]) == 3 and len(results["load_average"]["end"]) == 3
    assert results["cleanup_problems"] == []
    rows = {row["name"]: row for row in results["rows"]}
    assert set(rows) == set(ROWS), rows.keys()
    for row in rows.values():
        assert "failure" not in row and "skipped" not in row, row
        assert row["cycles"] == 1 and row["sent"] > 0 and row["posts"] > 0
        assert [e["name"] for e in row["events"]] == ["switch", "rollback"]
        assert all(e["ok"] and e["first_new_ms"] is not None for e in row["events"]), row["events"]
        assert row["p50_ms"] is not None and row["p99_ms"] >= row["p50_ms"]
        assert len(row["series"]["t"]) == len(row["series"]["failed"]) == len(row["series"]["p99_ms"])
    bgci, baseline = rows[ROWS[0]], rows[ROWS[1]]
    assert bgci["lost"] == 0, bgci["error_samples"]
    assert baseline["lost"] > 0  # the gap between stop and start is there to see
    for event in bgci["events"]:  # the router is told before the new colour answers
        assert event["decision_ms"] <= event["first_new_ms"] <= event["command_ms"]

    stages = {o["stage"] for o in results["overhead"] if o["row"] == ROWS[0]}
    assert stages == {"deploy-green", "verify", "switch", "rollback"}
    for o in results["overhead"]:
        assert o["calls"] > 0 and o["overhead_s"] <= o["wall_s"]
    assert results["help"]["bgci_help"]["mean_ms"] > results["help"]["python_floor"]["min_ms"] > 0
    targets = {t["target"]: t for t in results["targets"]}
    assert targets["0 requests lost in every bgci row"]["met"] is True
    assert len(targets) == 4

    changes = {c["key"]: c for c in results["changes"]}
    assert tuple(changes) == CHANGES
    check_port_change(changes["port-change"])
    check_router_upgrade(changes["router-upgrade"])

    table = (tmp_path / "latest.md").read_text()
    for heading in ("## Requests lost", "## Switch and rollback latency", "## bgci's own overhead",
                    "## Everyday changes", "### A new port", "### A router upgrade", "## Targets"):
        assert heading in table
    assert all(name in table for name in ROWS)
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert leftovers(results["run_id"]) == []


def measured(change: dict[str, Any], groups: dict[str, tuple[int, dict[str, int] | None]]) -> None:
    """Both sides ran whole: every step of one cycle, each group's runs and exit codes as given
    (``codes`` None: commands a team types, no bgci exit code)."""
    assert "failure" not in change and "skipped" not in change and change["cycles"] == 1, change
    for who in ("bgci", "by_hand"):
        side = change[who]
        assert "failure" not in side, side["failure"]
        assert side["sent"] > 0 and side["lost"] <= side["sent"]
        assert isinstance(side["longest_failing_ms"], float) and side["longest_failing_ms"] >= 0
        assert sum(s["lost"] for s in side["stretches"]) == side["lost"]
        assert sum(s["lost"] for s in side["steps"]) <= side["lost"]
    for key, (runs, codes) in groups.items():
        who, name = key.split(":")
        group = change[who]["groups"][name]
        assert group["runs"] == runs, (key, group)
        assert group["codes"] == (codes or {}), (key, group)
    for who in ("bgci", "by_hand"):
        assert set(change[who]["groups"]) == {k.split(":")[1] for k in groups if k.startswith(who + ":")}
    assert set(change["comparison"]) >= {"bgci", "by_hand", "ratio_lost", "ratio_longest_failing"}


def check_port_change(change: dict[str, Any]) -> None:
    ok = {"0": 1}
    measured(change, {"bgci:deploy-green": (1, ok), "bgci:verify": (1, ok), "bgci:switch": (1, ok),
                      "bgci:rollback": (1, ok), "by_hand:start the new release": (1, None),
                      "by_hand:switch": (1, None), "by_hand:rollback": (1, None),
                      "by_hand:remove the new release": (1, None)})
    bgci, by_hand = change["bgci"], change["by_hand"]
    assert bgci["ports_recorded"] == {"blue": 8000, "green": 9000}, "the new port reached only green"
    assert bgci["lost"] == 0, bgci["error_samples"]  # docs/guarantees.md: a new port loses nothing
    assert by_hand["groups"]["switch"]["lost"] > 0  # restarting HAProxy cuts what it serves


def check_router_upgrade(change: dict[str, Any]) -> None:
    measured(change, {"bgci:refused": (4, {"4": 4}), "bgci:reboot": (1, {"0": 1}),
                      "bgci:after": (1, {"0": 1}), "by_hand:reboot": (1, None)})
    bgci = change["bgci"]
    refused = [s for s in bgci["steps"] if s["group"] == "refused"]
    assert [s["name"].split()[1] for s in refused] == ["deploy-green", "verify", "switch", "rollback"]
    assert all(s.get("note") == "names `bgci router reboot`" for s in refused), refused
    assert bgci["groups"]["refused"]["lost"] == 0  # a refused stage touches nothing
    (reboot,) = bgci["reboots"]
    assert set(reboot) >= {"changes", "probes", "failed", "cut_seconds"}, reboot
    assert reboot["probes"] >= reboot["failed"] >= 0 and reboot["cut_seconds"] >= 0
    assert any("router.image" in c for c in reboot["changes"]), reboot
    assert change["images"] == [reboot["image"]] and reboot["image"] != change["from"]
    assert change["by_hand"]["groups"]["reboot"]["lost"] > 0  # docker rm -f + docker run cuts traffic
