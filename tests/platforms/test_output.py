"""A colour's output read from a cursor on (the bake's log watch): the process platform's
output.log, and the engine's timestamped logs (docker, swarm) read through ``logs_after``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bgci.config import load_config
from bgci.docker_engine import logs_after
from bgci.platforms.process import ProcessPlatform


def test_process_output_from_now_on_then_what_was_added(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(
        'app = "shop"\n[platform]\nkind = "process"\ncommand = "serve {port}"\n'
        f'state_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    platform = ProcessPlatform(load_config(cwd=tmp_path, environ={}))
    log = tmp_path / "state" / "shop" / "colours" / "green" / "output.log"
    log.parent.mkdir(parents=True)
    log.write_text("booting\n", encoding="utf-8")
    text, cursor = platform.output_after("green", "")
    assert text == "" and cursor, "from now on: what was written before is not returned"
    with log.open("a", encoding="utf-8") as out:
        out.write("ERROR one\nhalf a li")
    text, cursor = platform.output_after("green", cursor)
    assert text == "ERROR one\n", "a line being written waits"
    with log.open("a", encoding="utf-8") as out:
        out.write("ne\n")
    text, cursor = platform.output_after("green", cursor)
    assert text == "half a line\n"
    log.replace(log.with_name("output.log.1"))  # the colour was started again: a new log
    log.write_text("new process\n", encoding="utf-8")
    text, _ = platform.output_after("green", cursor)
    assert text == "new process\n"
    assert os.path.exists(log.with_name("output.log.1"))


def test_engine_logs_after_a_timestamp_cursor() -> None:
    lines = [b"2026-01-02T03:04:05.100000000Z old line\n",
             b"2026-01-02T03:04:05.200000001Z ERROR new one\n",
             b"2026-01-02T03:04:06.3Z another\n"]
    asked: list[dict[str, Any]] = []

    def fetch(**kw: Any) -> bytes:
        asked.append(kw)
        return lines[0] if kw.get("tail") == 1 else b"".join(lines)

    text, cursor = logs_after(fetch, "")
    assert text == "" and cursor.endswith("100000000"), cursor
    text, cursor = logs_after(fetch, cursor)
    assert text == "ERROR new one\nanother\n", text
    assert asked[-1]["since"] == 1767323045 and asked[-1]["timestamps"] is True
    text, _ = logs_after(lambda **kw: iter(lines), cursor)  # a service's logs come in chunks
    assert text == ""
    assert logs_after(lambda **kw: iter(lines[:1]), "")[1].endswith("100000000")
