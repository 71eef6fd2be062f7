"""The adapters one stage works with, made on first use (``build`` never touches the router)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from bgci.lock import Lease, deploy_lock, new_lock, take_lock
from bgci.log import Log
from bgci.model import Observation
from bgci.ports import LockInfo, Platform, Router, StateStore
from bgci.registry import Site, make_router, open_site
from bgci.settings import Config


@dataclass
class Identity:
    """Who runs this stage, for the lock and the history (from the CI adapter)."""

    holder: str
    job_url: str = ""


class Deployment:
    """One app's deployment as a stage sees it: its config, its log, who runs the stage, and the
    adapters of its target, made on first use from the registry (or given: ``site`` and
    ``router``, as the stage-core tests give fakes)."""

    def __init__(self, config: Config, log: Log, who: Identity, lock_wait: float = 60.0, *,
                 site: Site | None = None, router: Router | None = None,
                 lease: Lease | None = None) -> None:
        self.config = config
        self.log = log
        self.who = who
        self.lock_wait = lock_wait
        self.lease = lease
        self.found: Observation | None = None  # live traffic as the stage found it (reconcile)
        self.seen: Observation | None = None  # ... and as it left it (conclude)
        if site is not None:
            self.site = site
        if router is not None:
            self.router = router

    @cached_property
    def site(self) -> Site:
        return open_site(self.config)

    @cached_property
    def platform(self) -> Platform:
        return self.site.platform

    @cached_property
    def router(self) -> Router:
        return make_router(self.config, self.site)

    @cached_property
    def store(self) -> StateStore:
        return self.site.store

    @contextmanager
    def locked(self) -> Iterator[LockInfo]:
        """Hold the app's deploy lock (exit 5 naming the holder when it stays taken). With a
        lease, the lock is taken once and kept for the next stages, until ``close``."""
        if self.lease is not None and self.lease.info is not None:
            yield self.lease.info
            return
        info = new_lock(self.who.holder, self.who.job_url)
        if self.lease is None:
            with deploy_lock(self.store, info, ttl=self.config.lock.ttl, wait=self.lock_wait,
                             say=self.log.info) as held:
                yield held
            return
        take_lock(self.store, info, ttl=self.config.lock.ttl, wait=self.lock_wait,
                  say=self.log.info)
        self.lease.info, self.lease.store = info, self.store
        yield info

    def close(self) -> None:
        """Release a leased lock, then the connections to the target."""
        try:
            if self.lease is not None:
                self.lease.release()
        finally:
            if "site" in self.__dict__:
                self.site.close()
