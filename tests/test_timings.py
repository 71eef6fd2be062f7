"""BGCI_TIMINGS: off by default; when set, outermost waits and marks are appended as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgci.timings import mark, waiting, waits_on


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_nothing_is_written_when_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BGCI_TIMINGS", raising=False)
    monkeypatch.chdir(tmp_path)
    with waiting("engine", "x"):
        mark("switch")
    assert list(tmp_path.iterdir()) == []


def test_outermost_waits_and_marks_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "timings.jsonl"
    monkeypatch.setenv("BGCI_TIMINGS", str(out))

    @waits_on("app")
    def health() -> str:
        with waiting("engine", "nested: not counted twice"):
            return "ok"

    assert health() == "ok"
    mark("switch")
    with pytest.raises(RuntimeError), waiting("engine", "fails"):
        raise RuntimeError("the wait is still recorded")
    entries = lines(out)
    assert [(e.get("on"), e.get("what"), e.get("mark")) for e in entries] == [
        ("app", "test_outermost_waits_and_marks_are_recorded.<locals>.health", None),
        (None, None, "switch"),
        ("engine", "fails", None),
    ]
    assert all(isinstance(e["seconds"], float) and e["seconds"] >= 0 for e in entries if "on" in e)
