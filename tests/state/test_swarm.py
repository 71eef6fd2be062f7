"""The swarm state store's logic against an in-memory stand-in for the Swarm config API (create is
atomic and refuses a taken name with 409, as the managers do). The same races against a real swarm
are in tests/e2e/test_swarm_store.py."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from functools import partial
from typing import Any

import docker.errors
import pytest
import requests

from bgci.errors import InfraError
from bgci.lock import deploy_lock, new_lock
from bgci.model import Release
from bgci.record import HISTORY_LIMIT, State
from bgci.state.swarm import KEEP_GENERATIONS, MAX_CONFIG_BYTES, SwarmStore
from tests.helpers.race import race

_ids = itertools.count(1)


def _api_error(status: int, message: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls(message, response=response, explanation=message)


class FakeConfig:
    def __init__(self, swarm: FakeSwarm, name: str, data: bytes, labels: dict[str, str]) -> None:
        self.swarm = swarm
        self.id = f"cfg{next(_ids):06d}"
        self.name = name
        self.attrs = {"ID": self.id, "Spec": {"Name": name, "Labels": dict(labels),
                                              "Data": base64.b64encode(data).decode()}}

    def remove(self) -> None:
        self.swarm.remove_config(self.id)


class FakeSwarm:
    """``client.configs`` and ``client.api.remove_config`` of one swarm, shared by its clients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.configs: dict[str, FakeConfig] = {}  # by name

    def create(self, name: str, data: bytes, labels: dict[str, str]) -> FakeConfig:
        with self.lock:
            if name in self.configs:
                raise _api_error(409, f"rpc error: code = AlreadyExists desc = config {name} "
                                      "already exists")
            config = FakeConfig(self, name, data, labels)
            self.configs[name] = config
            return config

    def get(self, name: str) -> FakeConfig:
        with self.lock:
            if name not in self.configs:
                raise _api_error(404, f"config {name} not found")
            return self.configs[name]

    def list(self, filters: dict[str, Any]) -> list[FakeConfig]:
        wanted = [f.split("=", 1) for f in filters.get("label", [])]
        with self.lock:
            return [c for c in self.configs.values()
                    if all(c.attrs["Spec"]["Labels"].get(k) == v for k, v in wanted)]

    def remove_config(self, config_id: str) -> None:
        with self.lock:
            for name, config in list(self.configs.items()):
                if config.id == config_id:
                    del self.configs[name]
                    return
            raise _api_error(404, f"config {config_id} not found")


class FakeClient:
    """What one runner's docker client sees of the swarm (any manager: the same Raft store)."""

    def __init__(self, swarm: FakeSwarm) -> None:
        self.configs = swarm
        self.api = swarm


def stores(count: int = 2) -> tuple[FakeSwarm, list[SwarmStore]]:
    swarm = FakeSwarm()
    clients: list[Any] = [FakeClient(swarm) for _ in range(count)]
    return swarm, [SwarmStore(client, "shop") for client in clients]


def test_two_stores_racing_for_the_lock_exactly_one_wins() -> None:
    _, (a, b) = stores()
    for _ in range(200):
        infos = [new_lock("runner-a", "https://ci/a"), new_lock("runner-b", "https://ci/b")]
        results = race([partial(a.try_lock, infos[0]), partial(b.try_lock, infos[1])])
        winners = [i for i, held in enumerate(results) if held is None]
        assert len(winners) == 1, results
        loser = 1 - winners[0]
        holder = results[loser]
        assert (holder.holder, holder.token) == (infos[winners[0]].holder, infos[winners[0]].token)
        assert holder.job_url == infos[winners[0]].job_url
        assert a.current_lock() == b.current_lock() == holder
        (a, b)[loser].unlock(infos[loser])  # not the holder: changes nothing
        assert b.current_lock() == holder
        (a, b)[winners[0]].unlock(infos[winners[0]])
        assert a.current_lock() is None


def test_a_broken_lock_is_never_released_by_its_old_holder() -> None:
    _, (a, b) = stores()
    old = new_lock("runner-a", "")
    assert a.try_lock(old) is None
    b.unlock(b.current_lock() or old)  # runner b breaks the stale lock (lock.ttl) ...
    new = new_lock("runner-b", "")
    assert b.try_lock(new) is None  # ... and takes it
    a.unlock(old)  # runner a wakes up and "releases" what it thinks is its lock
    held = b.current_lock()
    assert held is not None and held.token == new.token


def test_deploy_lock_between_stores_waits_then_names_the_holder() -> None:
    from bgci.errors import LockHeld

    _, (a, b) = stores()
    said: list[str] = []
    first = new_lock("runner-a", "https://ci/a")
    with deploy_lock(a, first, ttl=900, wait=0.3, say=said.append, poll=0.05), \
            pytest.raises(LockHeld, match="runner-a"), \
            deploy_lock(b, new_lock("runner-b", ""), ttl=900, wait=0.3, say=said.append, poll=0.05):
        pass
    assert a.current_lock() is None and any("waiting up to" in s for s in said)


def test_state_writes_are_compare_and_swap() -> None:
    _, (a, b) = stores()
    assert a.read().history == [] and b.read().history == []
    first = a.read()
    first.colours["blue"].release = Release("shop:1", "sha256:" + "1" * 64)
    first.log({"stage": "deploy-green"})
    a.write(first)
    stale = State("shop")  # what runner b would write: it last read generation 0
    stale.log({"stage": "verify"})
    with pytest.raises(InfraError, match="changed underneath") as raised:
        b.write(stale)
    assert "nothing was overwritten" in str(raised.value)
    assert [h["stage"] for h in a.read().history] == ["deploy-green"]
    again = b.read()  # read again, then the write goes through
    assert again.release_of("blue") == Release("shop:1", "sha256:" + "1" * 64)
    again.log({"stage": "verify"})
    b.write(again)
    assert [h["stage"] for h in a.read().history] == ["deploy-green", "verify"]


def test_old_generations_are_removed_and_a_generation_is_plain_json() -> None:
    swarm, (a,) = stores(1)
    for i in range(10):
        state = a.read()
        state.log({"n": i})
        a.write(state)
    names = sorted(swarm.configs)
    assert names == [a.state_name(g) for g in range(11 - KEEP_GENERATIONS, 11)], names
    latest = swarm.configs[a.state_name(10)]
    document = json.loads(base64.b64decode(latest.attrs["Spec"]["Data"]))
    assert [h["n"] for h in document["history"]] == list(range(10))
    assert latest.attrs["Spec"]["Labels"] == {"org.bgci.app": "shop", "org.bgci.role": "state",
                                              "org.bgci.generation": "10"}


def test_state_over_the_config_size_limit_keeps_its_newest_history() -> None:
    swarm, (a,) = stores(1)
    state = a.read()
    for i in range(HISTORY_LIMIT):
        state.log({"n": i, "change": "x" * 2000})
    a.write(state)
    raw = base64.b64decode(swarm.configs[a.state_name(1)].attrs["Spec"]["Data"])
    assert len(raw) <= MAX_CONFIG_BYTES
    kept = [h["n"] for h in a.read().history]
    assert kept and kept[-1] == HISTORY_LIMIT - 1 and kept == sorted(kept)


def test_corrupt_generation_is_an_infrastructure_error() -> None:
    swarm, (a,) = stores(1)
    swarm.create(a.state_name(1), b"{not json", {"org.bgci.app": "shop", "org.bgci.role": "state",
                                                 "org.bgci.generation": "1"})
    with pytest.raises(InfraError, match="corrupt"):
        a.read()
