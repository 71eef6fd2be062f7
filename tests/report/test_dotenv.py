"""``bgci.env`` carries the facts to later jobs, in a form GitLab's dotenv report accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bgci.model import StageResult
from bgci.report import write_reports
from bgci.report.dotenv import env_values, read_dotenv, update_dotenv

# What GitLab accepts: KEY=value lines, nothing else (no blank lines, no comments).
GITLAB_LINE = re.compile(r"[A-Za-z0-9_]+=\S(?:.*\S)?|[A-Za-z0-9_]+=")


def gitlab_parse(text: str) -> dict[str, str]:
    """GitLab's parser: every line split at the first "=", both sides stripped, quotes kept."""
    values = {}
    for line in text.split("\n")[:-1]:
        assert GITLAB_LINE.fullmatch(line), f"GitLab rejects {line!r}"
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def test_env_values_names_every_fact_and_omits_empty_ones() -> None:
    stage = StageResult(
        stage="switch",
        app="shop",
        live_colour="green",
        idle_colour="blue",
        image="registry.example:5000/shop:abc123",
        digest="sha256:" + "0" * 64,
        live_url="http://127.0.0.1:8080",
        preview_url="http://127.0.0.1:8081",
    )
    assert env_values(stage) == {
        "BGCI_LIVE_COLOR": "green",
        "BGCI_IDLE_COLOR": "blue",
        "BGCI_IMAGE": "registry.example:5000/shop:abc123",
        "BGCI_DIGEST": "sha256:" + "0" * 64,
        "BGCI_LIVE_URL": "http://127.0.0.1:8080",
        "BGCI_PREVIEW_URL": "http://127.0.0.1:8081",
    }
    assert env_values(StageResult(stage="verify", app="shop", live_colour="blue")) == {
        "BGCI_LIVE_COLOR": "blue"
    }


def test_later_stages_keep_what_build_wrote(tmp_path: Path) -> None:
    build = StageResult(stage="build", app="shop", image="shop:abc123", digest="sha256:1")
    write_reports(build, tmp_path, {})
    green = StageResult(
        stage="deploy-green",
        app="shop",
        live_colour="blue",
        idle_colour="green",
        preview_url="http://127.0.0.1:8081",
    )
    write_reports(green, tmp_path, {})
    switch = StageResult(stage="switch", app="shop", live_colour="green", idle_colour="blue")
    write_reports(switch, tmp_path, {})

    text = (tmp_path / "bgci.env").read_text(encoding="utf-8")
    assert gitlab_parse(text) == {
        "BGCI_IMAGE": "shop:abc123",
        "BGCI_DIGEST": "sha256:1",
        "BGCI_LIVE_COLOR": "green",
        "BGCI_IDLE_COLOR": "blue",
        "BGCI_PREVIEW_URL": "http://127.0.0.1:8081",
    }
    assert read_dotenv(tmp_path / "bgci.env") == gitlab_parse(text)


def test_values_read_back_unchanged_in_gitlab(tmp_path: Path) -> None:
    path = tmp_path / "bgci.env"
    tricky = {
        "QUOTES": '"it\'s" quoted',
        "EQUALS": "a=b==c",
        "HASH": "#not-a-comment",
        "DOLLAR": "$HOME and ${X}",
        "UNICODE": "ünïcødé ✓",
    }
    merged = update_dotenv(path, tricky)
    assert merged == tricky
    assert gitlab_parse(path.read_text(encoding="utf-8")) == tricky


def test_newlines_and_escapes_cannot_break_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bgci.env"
    update_dotenv(path, {"A": "  line1\r\nINJECTED=1\n\nline3\x1b[31m \x00 ", "B": ""})
    assert gitlab_parse(path.read_text(encoding="utf-8")) == {
        "A": "line1 INJECTED=1 line3",
        "B": "",
    }


def test_merge_drops_lines_gitlab_would_reject(tmp_path: Path) -> None:
    path = tmp_path / "bgci.env"
    before = "# comment\n\nOTHER=kept\nnot a pair\nBAD KEY=x\n BGCI_IMAGE = old \n"
    path.write_text(before, encoding="utf-8")
    update_dotenv(path, {"BGCI_LIVE_COLOR": "green"})
    after = path.read_text(encoding="utf-8")
    assert after == "OTHER=kept\nBGCI_IMAGE=old\nBGCI_LIVE_COLOR=green\n"


def test_invalid_key_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BAD-KEY"):
        update_dotenv(tmp_path / "bgci.env", {"BAD-KEY": "x"})
    assert not (tmp_path / "bgci.env").exists()
