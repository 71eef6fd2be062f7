"""Reading a detached process's log file as `bgci logs` does: the last lines, then what comes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bgci.detached import follow


def test_the_last_lines_or_all_of_it(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("".join(f"line {n}\n" for n in range(10)))
    assert "".join(follow(log, tail=3, keep_going=lambda: False)) == "line 7\nline 8\nline 9\n"
    assert "".join(follow(log, tail=None, keep_going=lambda: False)).count("\n") == 10
    assert "".join(follow(log, tail=0, keep_going=lambda: False)) == ""
    assert "".join(follow(tmp_path / "none.log", tail=3, keep_going=lambda: False)) == ""


def test_follow_shows_what_is_written_next_and_a_new_file_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("before\n")
    stop = threading.Event()

    def app() -> None:
        time.sleep(0.3)
        with log.open("a") as handle:
            handle.write("after the command started\n")
        time.sleep(0.3)
        log.replace(tmp_path / "output.log.1")  # a new start of the colour
        log.write_text("the new process\n")
        time.sleep(0.5)
        stop.set()

    writer = threading.Thread(target=app)
    writer.start()
    seen = "".join(follow(log, tail=1, keep_going=lambda: not stop.is_set(), poll=0.05))
    writer.join()
    assert seen == "before\nafter the command started\nthe new process\n"
