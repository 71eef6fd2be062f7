"""The adapters one stage works with, made on first use (``build`` never touches the router)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from bgci.config import Config
from bgci.log import Log
from bgci.platforms import Platform, make_platform
from bgci.routers import Router, make_router
from bgci.state import LockInfo, StateStore, deploy_lock, new_lock


@dataclass
class Identity:
    """Who runs this stage, for the lock and the history (from the CI adapter)."""

    holder: str
    job_url: str = ""


class Deployment:
    def __init__(self, config: Config, log: Log, who: Identity, lock_wait: float = 60.0) -> None:
        self.config = config
        self.log = log
        self.who = who
        self.lock_wait = lock_wait

    @cached_property
    def platform(self) -> Platform:
        return make_platform(self.config)

    @cached_property
    def router(self) -> Router:
        return make_router(self.config, self.platform)

    @cached_property
    def store(self) -> StateStore:
        return self.platform.store()

    @contextmanager
    def locked(self) -> Iterator[LockInfo]:
        """Hold the app's deploy lock (exit 5 naming the holder when it stays taken)."""
        info = new_lock(self.who.holder, self.who.job_url)
        with deploy_lock(self.store, info, ttl=self.config.lock.ttl, wait=self.lock_wait,
                         say=self.log.info) as held:
            yield held

    def close(self) -> None:
        if "platform" in self.__dict__:
            self.platform.close()
