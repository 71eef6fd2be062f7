"""``<stage>.json`` holds the whole stage result and is valid JSON whatever stages put in it."""

from __future__ import annotations

import json
from pathlib import Path

from bgci.model import Check, StageResult
from bgci.report import to_json, write_reports


def deploy_green() -> StageResult:
    stage = StageResult(
        stage="deploy-green",
        app="shop",
        status="failed",
        exit_code=1,
        message="green never became healthy",
        live_colour="blue",
        idle_colour="green",
        colour="green",
        image="shop:abc123",
        digest="sha256:" + "ab" * 32,
        live_url="http://127.0.0.1:8080",
        preview_url="http://127.0.0.1:8081",
        started=1_700_000_000.25,
        finished=1_700_000_042.5,
    )
    stage.add(Check("health green", "failed", 41.0, "503 after 60s", "GET /healthz -> 503"))
    return stage


def test_json_has_every_fact_with_the_identity_first() -> None:
    data = json.loads(to_json(deploy_green()))
    assert list(data)[:4] == ["stage", "app", "status", "exit_code"]
    assert data["stage"] == "deploy-green" and data["exit_code"] == 1
    assert (data["live_colour"], data["idle_colour"]) == ("blue", "green")
    assert data["image"] == "shop:abc123" and data["digest"].startswith("sha256:")
    assert data["preview_url"] == "http://127.0.0.1:8081"
    assert data["started"] == "2023-11-14T22:13:20.250Z"
    assert data["finished"] == "2023-11-14T22:14:02.500Z"
    assert data["checks"] == [
        {
            "name": "health green",
            "outcome": "failed",
            "seconds": 41.0,
            "message": "503 after 60s",
            "output": "GET /healthz -> 503",
        }
    ]


def test_json_is_stable_and_indented() -> None:
    text = to_json(deploy_green())
    assert text == to_json(deploy_green())
    assert text.startswith('{\n  "stage": "deploy-green",') and text.endswith("}\n")


def test_anything_in_extra_or_output_stays_valid_json(tmp_path: Path) -> None:
    stage = deploy_green()
    bad = "bytes " + b"\xff".decode("utf-8", "surrogateescape") + " \x1b[31mred\x1b[0m \x00"
    stage.add(Check("smoke", "passed", float("nan"), output=bad))
    stage.extra = {
        "path": tmp_path,
        "ratio": float("inf"),
        "tags": {"b", "a"},
        "nested": {1: (1, 2), "raw": b"\xfe"},
    }
    text = to_json(stage)
    text.encode("utf-8")  # no lone surrogate survives: the file can be written as UTF-8
    data = json.loads(text)
    assert data["checks"][1]["seconds"] is None
    # The JSON keeps the output faithfully (escapes included); only invalid text is replaced.
    assert data["checks"][1]["output"] == "bytes \ufffd \x1b[31mred\x1b[0m \x00"
    assert data["extra"] == {
        "path": str(tmp_path),
        "ratio": None,
        "tags": ["a", "b"],
        "nested": {"1": [1, 2], "raw": "\ufffd"},
    }


def test_write_reports_writes_the_json(tmp_path: Path) -> None:
    paths = write_reports(deploy_green(), tmp_path, {"app": "shop"})
    assert [p.name for p in paths] == ["deploy-green.xml", "deploy-green.json", "bgci.env",
                                      "report.html"]
    assert json.loads(paths[1].read_text(encoding="utf-8"))["status"] == "failed"
