"""Removing a Swarm service the way Docker 20.10's swarm manager survives: never while the tasks
of its scale-down are being deleted (removing it then panics the engine: swarmkit's
SetServiceTasksRemove meets a task deleted under it, and every container goes down)."""

from __future__ import annotations

from typing import Any

from bgci.swarm_engine import scale_down_and_remove


class Swarm:
    """One service of two tasks, as the engine shows it poll after poll: scaled down, the tasks
    keep running for a while, then stop, then Swarm's reaper deletes them; a task of an earlier
    update stays as history (desired state shutdown). Records what was asked of it when."""

    def __init__(self, running_polls: int = 3, stopped_polls: int = 3) -> None:
        self.polls = 0
        self.scaled_at: int | None = None
        self.removed_at: int | None = None
        self.running_polls, self.stopped_polls = running_polls, stopped_polls
        self.api = self
        self.id = "svc1"
        self.attrs = {"Spec": {"Mode": {"Replicated": {"Replicas": 2}}}}
        self.history = {"ID": "old", "ServiceID": "svc1", "DesiredState": "shutdown",
                        "Status": {"State": "shutdown"}}

    # client.api
    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.polls += 1
        if self.removed_at is not None:
            return []
        if self.scaled_at is None:
            return [self._task(i, "running", "running") for i in (1, 2)] + [self.history]
        since = self.polls - self.scaled_at
        if since <= self.running_polls:
            state = "running"
        elif since <= self.running_polls + self.stopped_polls:
            state = "shutdown"
        else:
            return [self.history]  # reaped
        return [self._task(i, "remove", state) for i in (1, 2)] + [self.history]

    def _task(self, i: int, desired: str, state: str) -> dict[str, Any]:
        return {"ID": f"t{i}", "ServiceID": "svc1", "DesiredState": desired,
                "Status": {"State": state}}

    # the service
    def scale(self, replicas: int) -> None:
        assert replicas == 0
        self.scaled_at = self.polls

    def remove(self) -> None:
        self.removed_at = self.polls


def test_the_service_is_removed_only_once_its_scaled_down_tasks_are_deleted() -> None:
    swarm = Swarm()
    scale_down_and_remove(swarm, swarm, timeout=30)  # type: ignore[arg-type]
    assert swarm.scaled_at is not None and swarm.removed_at is not None
    # removal came after the reaper deleted both tasks: running 3 polls, stopped 3, then gone
    assert swarm.removed_at - swarm.scaled_at > swarm.running_polls + swarm.stopped_polls


def test_a_service_already_at_zero_is_not_scaled_again_and_history_does_not_hold_it() -> None:
    swarm = Swarm(running_polls=0, stopped_polls=0)
    swarm.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] = 0
    swarm.scaled_at = 0
    scale_down_and_remove(swarm, swarm, timeout=30)  # type: ignore[arg-type]
    assert swarm.scaled_at == 0  # scale() was not called again
    assert swarm.removed_at is not None and swarm.removed_at <= 3
