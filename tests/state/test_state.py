"""The state document and the lock protocol every store follows (in-memory store: logic only;
the real stores are proven by their own tests and the end-to-end suite)."""

from __future__ import annotations

import json
import time

import pytest

from bgci.errors import LockHeld
from bgci.lock import deploy_lock, new_lock
from bgci.model import ColourSpec, Release
from bgci.ports import LockInfo
from bgci.record import HISTORY_LIMIT, RELEASES_LIMIT, State


class MemoryStore:
    def __init__(self) -> None:
        self.state: dict[str, object] | None = None
        self.lock: LockInfo | None = None

    def read(self) -> State:
        return State.from_dict("shop", self.state)

    def write(self, state: State) -> None:
        self.state = json.loads(json.dumps(state.to_dict()))

    def try_lock(self, info: LockInfo) -> LockInfo | None:
        if self.lock is None:
            self.lock = info
            return None
        return self.lock

    def unlock(self, info: LockInfo) -> None:
        if self.lock is not None and self.lock.token == info.token:
            self.lock = None

    def current_lock(self) -> LockInfo | None:
        return self.lock


def test_state_round_trips_through_json() -> None:
    store = MemoryStore()
    state = store.read()
    v1 = Release("shop:1", "sha256:" + "a" * 64)
    state.colours["blue"].release = v1
    state.candidate = "green"
    state.previous, state.previous_release = "blue", v1
    state.mark_verified(v1.digest)
    state.quarantine("sha256:bad", "rolled back")
    state.log({"stage": "switch"})
    store.write(state)
    again = store.read()
    assert again.release_of("blue") == v1
    assert again.release_of("green") is None
    assert (again.candidate, again.previous, again.previous_release) == ("green", "blue", v1)
    assert again.is_verified(v1.digest)
    assert again.quarantined == {"sha256:bad": "rolled back"}
    assert again.history[0]["stage"] == "switch" and "at" in again.history[0]


def test_quarantine_revokes_verification() -> None:
    state = State("shop")
    state.mark_verified("sha256:x")
    state.quarantine("sha256:x", "bake failed")
    assert not state.is_verified("sha256:x")
    state.mark_verified("sha256:x")  # verified again, still quarantined: not switchable
    assert not state.is_verified("sha256:x")


def test_a_failed_verify_revokes_an_earlier_pass() -> None:
    state = State("shop")
    state.mark_verified("sha256:x")
    assert state.unverify("sha256:x") is True
    assert not state.is_verified("sha256:x")
    assert state.unverify("sha256:x") is False  # nothing left to revoke


def test_garbage_state_reads_as_empty() -> None:
    state = State.from_dict("shop", {"colours": "nonsense", "candidate": "purple", "history": [1]})
    assert state.candidate is None and state.history == []
    assert state.release_of("blue") is None


def test_history_is_bounded() -> None:
    state = State("shop")
    for i in range(HISTORY_LIMIT + 10):
        state.log({"n": i})
    assert len(state.history) == HISTORY_LIMIT
    assert state.history[-1]["n"] == HISTORY_LIMIT + 9


def test_lock_is_released_after_the_block_even_on_error() -> None:
    store = MemoryStore()
    with pytest.raises(RuntimeError), deploy_lock(store, new_lock("a", ""), ttl=60, wait=0,
                                                  say=print):
        assert store.current_lock() is not None
        raise RuntimeError("boom")
    assert store.current_lock() is None


def test_held_lock_gives_exit_5_naming_the_holder() -> None:
    store = MemoryStore()
    store.lock = new_lock("gitlab group/shop job 17", "https://ci.example/jobs/17")
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(LockHeld) as info, deploy_lock(store, new_lock("b", ""), ttl=60, wait=0.3,
                                                      say=said.append, poll=0.05):
        pass
    assert info.value.exit_code == 5
    assert "gitlab group/shop job 17" in str(info.value)
    assert "https://ci.example/jobs/17" in str(info.value)
    assert time.monotonic() - started >= 0.3
    assert said and "waiting up to" in said[0]
    assert store.lock is not None and store.lock.holder.startswith("gitlab")  # untouched


def test_stale_lock_is_broken_and_said() -> None:
    store = MemoryStore()
    stale = LockInfo("dead pipeline", "", since=time.time() - 1000, token="old")
    store.lock = stale
    said: list[str] = []
    with deploy_lock(store, new_lock("b", ""), ttl=900, wait=0, say=said.append) as held:
        assert store.current_lock() == held
    assert any("breaking stale deploy lock" in s and "dead pipeline" in s for s in said)


def test_unlock_never_removes_someone_elses_lock() -> None:
    store = MemoryStore()
    mine = new_lock("a", "")
    theirs = new_lock("a", "")  # same holder text, another token
    store.lock = theirs
    store.unlock(mine)
    assert store.lock is theirs


def test_lock_of_a_dead_local_process_is_broken_at_once() -> None:
    import socket
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = LockInfo("killed job", "", since=time.time(), token="t", host=socket.gethostname(),
                    pid=int(child.stdout))
    store = MemoryStore()
    store.lock = dead
    said: list[str] = []
    with deploy_lock(store, new_lock("b", ""), ttl=900, wait=0, say=said.append):
        pass
    assert any("process that is gone" in s for s in said)


def test_lock_of_a_live_or_remote_process_is_respected() -> None:
    import os
    import socket

    store = MemoryStore()
    store.lock = LockInfo("me", "", since=time.time(), token="t", host=socket.gethostname(),
                          pid=os.getpid())
    with pytest.raises(LockHeld), deploy_lock(store, new_lock("b", ""), ttl=900, wait=0, say=print):
        pass
    store.lock = LockInfo("remote", "", since=time.time(), token="t", host="another-runner", pid=1)
    with pytest.raises(LockHeld), deploy_lock(store, new_lock("b", ""), ttl=900, wait=0, say=print):
        pass


def test_releases_record_deploys_and_live_spans_and_survive_a_round_trip() -> None:
    state = State("shop")
    v1, v2 = Release("shop:1", "sha256:1"), Release("shop:2", "sha256:2")
    state.deployed("blue", v1, ColourSpec(port=8000, env={"A": "1"}))
    state.switched("blue", None)
    state.deployed("green", v2, ColourSpec(port=9000))
    state.switched("green", "blue")
    again = State.from_dict("shop", json.loads(json.dumps(state.to_dict())))
    one, two = again.releases["sha256:1"], again.releases["sha256:2"]
    assert (one.version, two.version) == ("1", "2")
    assert one.live_since and one.live_until, "v1 was live until v2 went live"
    assert two.live_since and not two.live_until
    assert one.spec == ColourSpec(port=8000, env={"A": "1"}), "rollback --to starts it as it ran"
    state.rolled_back("blue", v2, "bake failed")
    assert state.releases["sha256:2"].live_until and not state.releases["sha256:1"].live_until


def test_a_state_of_bgci_0_1_gets_its_releases_from_the_history() -> None:
    old = {"history": [
        {"at": "2026-11-01T10:00:00.000Z", "stage": "deploy-green", "outcome": "passed",
         "image": "shop:1", "digest": "sha256:1"},
        {"at": "2026-11-02T10:00:00.000Z", "stage": "deploy-green", "outcome": "failed",
         "image": "shop:bad", "digest": "sha256:bad"},
        {"at": "2026-11-03T10:00:00.000Z", "stage": "deploy-green", "outcome": "passed",
         "image": "shop:1b", "digest": "sha256:1"},
    ]}
    releases = State.from_dict("shop", old).releases
    assert list(releases) == ["sha256:1"]
    record = releases["sha256:1"]
    assert record.release.image == "shop:1b", "the newest name it was deployed by"
    assert record.deployed_first < record.deployed_last


def test_only_the_newest_releases_are_kept() -> None:
    state = State("shop")
    for n in range(RELEASES_LIMIT + 5):
        state.deployed("blue", Release(f"shop:{n}", f"sha256:{n}"), None)
    assert len(state.releases) == RELEASES_LIMIT
    assert "sha256:0" not in state.releases and f"sha256:{RELEASES_LIMIT + 4}" in state.releases
