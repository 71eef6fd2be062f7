"""The swarm state store against a real swarm: two runners (two clients, two stores) racing for
the deploy lock, exactly one wins every round; two runners writing the state from the same
generation, one write is refused. On a single node both clients reach the same manager; on a
multi-manager swarm every manager forwards these calls to the Raft leader, so the same holds."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import docker
import pytest

from bgci.errors import InfraError
from bgci.lock import new_lock
from bgci.state.swarm import SwarmStore
from tests.helpers.race import race

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.swarm]

ROUNDS = 20


@pytest.fixture
def two_runners(swarm_manager: Any) -> Iterator[tuple[SwarmStore, SwarmStore]]:
    """Two stores of one new app, each with its own engine connection; its configs removed after."""
    app = f"e2e-store-{uuid.uuid4().hex[:8]}"
    clients = [docker.from_env(timeout=60), docker.from_env(timeout=60)]
    try:
        yield SwarmStore(clients[0], app), SwarmStore(clients[1], app)
    finally:
        for config in swarm_manager.configs.list(filters={"label": f"org.bgci.app={app}"}):
            with contextlib.suppress(docker.errors.NotFound):
                config.remove()
        left = swarm_manager.configs.list(filters={"label": f"org.bgci.app={app}"})
        for client in clients:
            client.close()
        assert not left, f"configs left behind: {[c.name for c in left]}"


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.swarm
def test_two_runners_racing_for_the_lock_exactly_one_wins(
        two_runners: tuple[SwarmStore, SwarmStore]) -> None:
    a, b = two_runners
    wins = [0, 0]
    for _ in range(ROUNDS):
        infos = [new_lock("runner-a", "https://ci/a"), new_lock("runner-b", "https://ci/b")]
        results = race([partial(a.try_lock, infos[0]), partial(b.try_lock, infos[1])])
        winners = [i for i, held in enumerate(results) if held is None]
        assert len(winners) == 1, f"both or neither took the lock: {results}"
        winner, loser = winners[0], 1 - winners[0]
        wins[winner] += 1
        assert results[loser].token == infos[winner].token, "the loser must see the winner"
        assert results[loser].holder == infos[winner].holder
        assert a.current_lock() == b.current_lock() == results[loser]
        (a, b)[loser].unlock(infos[loser])  # not its lock: nothing happens
        assert (a, b)[winner].current_lock() == results[loser]
        (a, b)[winner].unlock(infos[winner])
        assert a.current_lock() is None and b.current_lock() is None
    assert sum(wins) == ROUNDS


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.swarm
def test_state_written_from_a_stale_read_is_refused(
        two_runners: tuple[SwarmStore, SwarmStore]) -> None:
    a, b = two_runners
    mine, theirs = a.read(), b.read()  # both read generation 0
    mine.log({"stage": "deploy-green", "who": "runner-a"})
    theirs.log({"stage": "deploy-green", "who": "runner-b"})
    results = race([partial(_write, a, mine), partial(_write, b, theirs)])
    assert sorted(results) == ["ok", "refused"], results
    winner = "runner-a" if results[0] == "ok" else "runner-b"
    assert [h["who"] for h in a.read().history] == [winner]
    assert [h["who"] for h in b.read().history] == [winner]


def _write(store: SwarmStore, state: Any) -> str:
    try:
        store.write(state)
    except InfraError as exc:
        assert "changed underneath" in str(exc)
        return "refused"
    return "ok"
