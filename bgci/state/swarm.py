"""State and deploy lock as Swarm configs: cluster-wide, atomic, reachable through any manager.

Swarm configs are small immutable named objects in the managers' Raft store. Every manager
forwards reads and writes of them to the Raft leader, so two runners talking to two different
managers of one swarm see one history, and ``config create`` with a name that exists fails (409)
wherever it is asked. Hence:

- the deploy lock is the config ``bgci-<app>-lock``, created atomically; its labels say who holds
  it (holder, job URL, since, token, host, pid). It is released by removing it *by ID*, so a runner
  never removes a lock that someone else took after its own was broken;
- the state is a sequence of immutable generations ``bgci-<app>-state-<n>``, each the whole JSON
  document. A write creates generation n+1, n being the generation this store read: when another
  runner created n+1 first, the create fails and the write is refused (compare-and-swap) instead
  of silently overwriting. All but the last few generations are removed.

``docker config inspect --pretty bgci-<app>-state-<n>`` shows a generation as plain JSON.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import docker
import docker.errors

from bgci.docker_engine import LABEL, engine
from bgci.errors import InfraError
from bgci.ports import LockInfo
from bgci.record import HISTORY_LIMIT, State

KEEP_GENERATIONS = 3  # older generations are removed after each write
MAX_CONFIG_BYTES = 480 * 1024  # Swarm refuses configs over 500 KiB
_CONFLICT = 409


class SwarmStore:
    """One app's state and lock as Swarm configs (see the module docstring)."""

    def __init__(self, client: docker.DockerClient, app: str) -> None:
        self.client = client
        self.app = app
        self.lock_name = f"bgci-{app}-lock"
        self._generation: int | None = None  # the generation last read or written here

    def state_name(self, generation: int) -> str:
        return f"bgci-{self.app}-state-{generation:09d}"

    # -- state -----------------------------------------------------------------------------
    def _generations(self) -> list[tuple[int, Any]]:
        """(generation, config) of this app's state, oldest first (one list call: one snapshot)."""
        found = []
        configs = self.client.configs.list(
            filters={"label": [f"{LABEL}.app={self.app}", f"{LABEL}.role=state"]})
        for config in configs:
            labels = config.attrs.get("Spec", {}).get("Labels") or {}
            try:
                generation = int(labels.get(f"{LABEL}.generation", ""))
            except ValueError:
                continue
            if config.name == self.state_name(generation):
                found.append((generation, config))
        return sorted(found, key=lambda item: item[0])

    def read(self) -> State:
        with engine("read the deployment state (swarm configs)"):
            generations = self._generations()
        if not generations:
            self._generation = 0
            return State(app=self.app)
        generation, config = generations[-1]
        self._generation = generation
        try:
            raw = base64.b64decode(config.attrs["Spec"].get("Data") or "")
            return State.from_dict(self.app, json.loads(raw))
        except (ValueError, KeyError) as exc:
            raise InfraError(
                f"deployment state in swarm config {config.name} is corrupt: {exc}",
                f"inspect it with `docker config inspect --pretty {config.name}`",
            ) from exc

    def write(self, state: State) -> None:
        data = _encode(state)
        with engine("write the deployment state (swarm configs)"):
            if self._generation is None:
                generations = self._generations()
                self._generation = generations[-1][0] if generations else 0
            generation = self._generation + 1
            name = self.state_name(generation)
            try:
                self.client.configs.create(name=name, data=data, labels={
                    f"{LABEL}.app": self.app, f"{LABEL}.role": "state",
                    f"{LABEL}.generation": str(generation)})
            except docker.errors.APIError as exc:
                if exc.status_code != _CONFLICT:
                    raise
                raise InfraError(
                    f"the deployment state changed underneath this stage: generation {generation} "
                    f"({name}) was written by another runner after this one read generation "
                    f"{generation - 1}; nothing was overwritten",
                    "another pipeline changed the deployment without the deploy lock; "
                    "`bgci status` shows what it did, then run this stage again",
                ) from exc
            self._generation = generation
            for old, config in self._generations():
                if old <= generation - KEEP_GENERATIONS:
                    with contextlib.suppress(docker.errors.NotFound):
                        config.remove()

    # -- lock ------------------------------------------------------------------------------
    def _lock_config(self) -> Any:
        try:
            config = self.client.configs.get(self.lock_name)
        except docker.errors.NotFound:
            return None
        return config if config.name == self.lock_name else None

    def try_lock(self, info: LockInfo) -> LockInfo | None:
        labels = {
            f"{LABEL}.app": self.app, f"{LABEL}.role": "lock", f"{LABEL}.holder": info.holder,
            f"{LABEL}.job-url": info.job_url, f"{LABEL}.since": repr(info.since),
            f"{LABEL}.token": info.token, f"{LABEL}.host": info.host, f"{LABEL}.pid": str(info.pid),
        }
        data = json.dumps({"holder": info.holder, "job_url": info.job_url, "since": info.since},
                          sort_keys=True).encode()
        with engine("take the deploy lock (swarm config)"):
            for _ in range(5):
                try:
                    self.client.configs.create(name=self.lock_name, data=data, labels=labels)
                    return None
                except docker.errors.APIError as exc:
                    if exc.status_code != _CONFLICT:
                        raise
                current = self.current_lock()
                if current is not None:
                    return current
            raise InfraError(f"deploy lock {self.lock_name} keeps appearing and vanishing")

    def current_lock(self) -> LockInfo | None:
        with engine("read the deploy lock (swarm config)"):
            config = self._lock_config()
        if config is None:
            return None
        labels = config.attrs.get("Spec", {}).get("Labels") or {}
        try:
            since = float(labels.get(f"{LABEL}.since") or 0)
            pid = int(labels.get(f"{LABEL}.pid") or 0)
        except ValueError:
            since, pid = 0.0, 0  # a hand-made lock: stale at once, so lock.ttl breaks it
        return LockInfo(
            holder=labels.get(f"{LABEL}.holder", "?"),
            job_url=labels.get(f"{LABEL}.job-url", ""),
            since=since,
            token=labels.get(f"{LABEL}.token", ""),
            host=labels.get(f"{LABEL}.host", ""),
            pid=pid,
        )

    def destroy(self, dry_run: bool) -> list[str]:
        done = []
        with engine("remove the deployment state (swarm configs)"):
            configs = [config for _, config in self._generations()]
            lock = self._lock_config()
            for config in [*configs, *([lock] if lock is not None else [])]:
                done.append(f"swarm config {config.name}")
                if not dry_run:
                    with contextlib.suppress(docker.errors.NotFound):
                        config.remove()
        return done

    def unlock(self, info: LockInfo) -> None:
        with engine("release the deploy lock (swarm config)"):
            config = self._lock_config()
            if config is None:
                return
            labels = config.attrs.get("Spec", {}).get("Labels") or {}
            if labels.get(f"{LABEL}.token") != info.token:
                return  # someone else's lock now: never remove it
            # by ID: if it was broken and re-taken meanwhile, the new lock has another ID
            with contextlib.suppress(docker.errors.NotFound):
                api: Any = self.client.api  # untyped in the stubs
                api.remove_config(config.id)


def _encode(state: State) -> bytes:
    """The state as compact JSON, history trimmed (oldest first) to fit one Swarm config."""
    document = state.to_dict()
    history = list(document["history"])[-HISTORY_LIMIT:]
    while True:
        document["history"] = history
        data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        if len(data) <= MAX_CONFIG_BYTES or not history:
            return data
        history = history[len(history) // 10 + 1:]
