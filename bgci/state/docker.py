"""State on the docker engine: a volume for the document, a container name as the lock.

Both are reached through the engine API alone (``put_archive``/``get_archive`` on a container that
is never started), so any runner that can reach ``DOCKER_HOST`` sees the same state. Creating a
container with a fixed name is atomic on the engine, which makes it a lock.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from typing import Any

import docker
import docker.errors

from bgci.docker_engine import LABEL, STATE_IMAGE, engine, ensure_state_image, read_file
from bgci.errors import InfraError
from bgci.ports import LockInfo
from bgci.record import State

STATE_PATH = "/state/state.json"


class DockerStore:
    def __init__(self, client: docker.DockerClient, app: str) -> None:
        self.client = client
        self.app = app
        self.volume = f"bgci-{app}-state"
        self.state_name = f"bgci-{app}-state"
        self.lock_name = f"bgci-{app}-lock"

    def _state_container(self) -> Any:
        try:
            return self.client.containers.get(self.state_name)
        except docker.errors.NotFound:
            pass
        ensure_state_image(self.client)
        try:
            return self.client.containers.create(
                STATE_IMAGE,
                name=self.state_name,
                labels={f"{LABEL}.app": self.app, f"{LABEL}.role": "state"},
                volumes={self.volume: {"bind": "/state", "mode": "rw"}},
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # another runner created it a moment ago
                return self.client.containers.get(self.state_name)
            raise

    def read(self) -> State:
        """The state (a new one when this app has none yet: nothing is created by reading)."""
        with engine("read the deployment state"):
            try:
                container = self.client.containers.get(self.state_name)
            except docker.errors.NotFound:
                return State(app=self.app)
            raw = read_file(container, STATE_PATH)
        if raw is None:
            return State(app=self.app)
        try:
            return State.from_dict(self.app, json.loads(raw))
        except ValueError as exc:
            raise InfraError(
                f"deployment state in volume {self.volume} is corrupt: {exc}",
                f"inspect it with `docker cp {self.state_name}:{STATE_PATH} -`",
            ) from exc

    def write(self, state: State) -> None:
        data = json.dumps(state.to_dict(), indent=1).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("state.json")
            info.size, info.mtime, info.mode = len(data), time.time(), 0o600
            tar.addfile(info, io.BytesIO(data))
        with engine("write the deployment state"):
            self._state_container().put_archive("/state", buf.getvalue())

    def try_lock(self, info: LockInfo) -> LockInfo | None:
        labels = {
            f"{LABEL}.app": self.app, f"{LABEL}.role": "lock", f"{LABEL}.holder": info.holder,
            f"{LABEL}.job-url": info.job_url, f"{LABEL}.since": repr(info.since),
            f"{LABEL}.token": info.token, f"{LABEL}.host": info.host, f"{LABEL}.pid": str(info.pid),
        }
        with engine("take the deploy lock"):
            ensure_state_image(self.client)
            try:
                self.client.containers.create(STATE_IMAGE, name=self.lock_name, labels=labels)
                return None
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
            current = self.current_lock()
            if current is not None:
                return current
        # The name is taken but the container cannot be inspected yet (the engine is still creating
        # it for another pipeline) or was released a moment ago: held, for now. deploy_lock waits
        # and tries again, and this placeholder is never stale or breakable.
        return LockInfo(holder=f"another pipeline (lock {self.lock_name} is being taken)",
                        since=time.time())

    def current_lock(self) -> LockInfo | None:
        with engine("read the deploy lock"):
            try:
                labels = self.client.containers.get(self.lock_name).labels
            except docker.errors.NotFound:
                return None
        return LockInfo(
            holder=labels.get(f"{LABEL}.holder", "?"),
            job_url=labels.get(f"{LABEL}.job-url", ""),
            since=float(labels.get(f"{LABEL}.since") or 0),
            token=labels.get(f"{LABEL}.token", ""),
            host=labels.get(f"{LABEL}.host", ""),
            pid=int(labels.get(f"{LABEL}.pid") or 0),
        )

    def destroy(self, dry_run: bool) -> list[str]:
        done = []
        with engine("remove the deployment state"):
            for name in (self.state_name, self.lock_name):
                with contextlib.suppress(docker.errors.NotFound):
                    container = self.client.containers.get(name)
                    done.append(f"container {name}")
                    if not dry_run:
                        container.remove(force=True)
            for volume in self.client.volumes.list(filters={"name": self.volume}):
                if volume.name == self.volume:
                    done.append(f"volume {self.volume}")
                    if not dry_run:
                        volume.remove(force=True)
        return done

    def unlock(self, info: LockInfo) -> None:
        with engine("release the deploy lock"):
            try:
                container = self.client.containers.get(self.lock_name)
            except docker.errors.NotFound:
                return
            if container.labels.get(f"{LABEL}.token") != info.token:
                return  # someone else's lock now: never remove it
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
