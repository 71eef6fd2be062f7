"""The file store of the process platform: state.json replaced atomically, the deploy lock taken by
exactly one of many bgci processes and released only by its holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bgci.errors import InfraError, LockHeld
from bgci.lock import deploy_lock, new_lock
from bgci.model import Release
from bgci.ports import LockInfo
from bgci.record import State
from bgci.state.files import FileStore

REPO = Path(__file__).resolve().parents[2]


def test_a_new_store_reads_an_empty_state_and_creates_its_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state" / "shop", "shop")
    state = store.read()
    assert state.app == "shop"
    assert state.history == [] and state.candidate is None
    assert (tmp_path / "state" / "shop").is_dir()


def test_state_round_trips_private_and_without_temporary_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "shop")
    state = State(app="shop")
    state.colours["green"].release = Release("v2", "sha256:" + "2" * 64)
    state.candidate = "green"
    state.mark_verified("sha256:" + "2" * 64)
    state.log({"stage": "deploy-green", "change": "green now runs v2"})
    store.write(state)

    again = FileStore(tmp_path, "shop").read()
    assert again.to_dict() == state.to_dict()
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".guard", "state.json"]


def test_a_reader_never_sees_half_a_state_document(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "shop")
    store.write(State(app="shop"))
    stop = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:  # straight from the file, without the store's lock: the rename alone must do
                data = json.loads((tmp_path / "state.json").read_bytes())
                seen.append(len(data["history"]))
            except ValueError as exc:
                problems.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        state = State(app="shop")
        for i in range(200):
            state.log({"stage": "verify", "change": "x" * 2000, "n": i})
            store.write(state)
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert seen and max(seen) <= 200


def test_a_corrupt_state_document_is_an_infrastructure_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(InfraError) as caught:
        FileStore(tmp_path, "shop").read()
    assert caught.value.exit_code == 3
    assert str(tmp_path / "state.json") in str(caught.value)


def test_an_unusable_state_dir_is_an_infrastructure_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = FileStore(tmp_path / "file" / "shop", "shop")
    with pytest.raises(InfraError) as caught:
        store.write(State(app="shop"))
    assert "platform.state_dir" in str(caught.value)


def test_the_lock_names_its_holder_and_only_the_holder_releases_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "shop")
    first = new_lock("ci@runner-1 pid 10", "https://ci.example/job/1")
    second = new_lock("ci@runner-2 pid 20", "https://ci.example/job/2")
    assert store.current_lock() is None

    assert store.try_lock(first) is None
    holder = store.try_lock(second)
    assert holder == first  # holder, job URL, since and token, as written
    assert store.current_lock() == first
    data = json.loads((tmp_path / "lock.json").read_text())
    assert data["holder"] == "ci@runner-1 pid 10" and data["job_url"] == "https://ci.example/job/1"
    assert (tmp_path / "lock.json").stat().st_mode & 0o777 == 0o600

    store.unlock(second)  # not the holder: nothing happens
    assert store.current_lock() == first
    store.unlock(first)
    assert store.current_lock() is None
    assert store.try_lock(second) is None
    store.unlock(second)
    store.unlock(second)  # releasing a free lock is harmless


def test_an_unreadable_lock_file_is_a_lock_that_turns_stale(tmp_path: Path) -> None:
    (tmp_path / "lock.json").write_text("")  # a crash between create and write
    old = time.time() - 3600
    os.utime(tmp_path / "lock.json", (old, old))
    store = FileStore(tmp_path, "shop")
    holder = store.current_lock()
    assert holder is not None and "unreadable lock file" in holder.holder
    assert abs(holder.since - old) < 2
    said: list[str] = []
    with deploy_lock(store, new_lock("me", ""), ttl=60, wait=0, say=said.append) as held:
        assert store.current_lock() == held
    assert any("breaking stale deploy lock" in line for line in said)
    assert store.current_lock() is None


def test_a_held_lock_makes_the_next_pipeline_wait_then_exit_5(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "shop")
    other = new_lock("ci@other pid 1", "https://ci.example/job/9")
    assert store.try_lock(other) is None
    started = time.monotonic()
    with pytest.raises(LockHeld) as caught, deploy_lock(store, new_lock("me", ""), ttl=900,
                                                        wait=0.5, say=lambda _: None, poll=0.1):
        pass
    assert time.monotonic() - started >= 0.5
    assert caught.value.exit_code == 5
    assert "ci@other pid 1" in str(caught.value) and "https://ci.example/job/9" in str(caught.value)
    assert store.current_lock() == other  # the waiter never touched it


_CONTENDER = """
import sys, time
from pathlib import Path
from bgci.lock import new_lock
from bgci.state.files import FileStore
store = FileStore(Path(sys.argv[1]), "shop")
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
print("won" if store.try_lock(new_lock(f"contender {sys.argv[3]}", "")) is None else "lost")
"""


def test_exactly_one_of_many_processes_takes_the_lock(tmp_path: Path) -> None:
    start = time.time() + 1.5  # all of them try at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(tmp_path), str(start), str(i)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
             for i in range(8)]
    outcomes = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    winner = FileStore(tmp_path, "shop").current_lock()
    assert winner is not None and winner.holder == f"contender {outcomes.index('won')}"


def test_lock_info_keeps_since_as_a_number(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "shop")
    info = LockInfo(holder="h", job_url="", since=1234567890.25, token="t")
    assert store.try_lock(info) is None
    current = store.current_lock()
    assert current is not None and current.since == 1234567890.25


def test_the_lock_of_a_pipeline_whose_process_is_gone_is_broken_at_once(tmp_path: Path) -> None:
    taker = "from pathlib import Path; import sys\n" \
            "from bgci.lock import new_lock\nfrom bgci.state.files import FileStore\n" \
            "assert FileStore(Path(sys.argv[1]), 'shop').try_lock(new_lock('dead ci', '')) is None\n"
    subprocess.run([sys.executable, "-c", taker, str(tmp_path)], check=True, cwd=REPO, timeout=60)
    store = FileStore(tmp_path, "shop")
    dead = store.current_lock()
    assert dead is not None and dead.holder == "dead ci" and dead.pid > 0
    said: list[str] = []
    with deploy_lock(store, new_lock("me", ""), ttl=900, wait=0, say=said.append) as held:
        assert store.current_lock() == held
    assert any("gone" in line for line in said)
