"""Traefik the user runs (``router.managed = false``): bgci owns one file of its file provider.

bgci writes ``<router.config_dir>/bgci-<app>.yml`` (two routers, three services, two header
middlewares, all named ``<app>-...``) exactly as for a managed Traefik, and reads what Traefik
serves from its API (``router.admin_url``). The live and preview routers go on the user's entry
points whose ports are those of router.listen and router.preview, found through that API. The
user's other dynamic files and static config are never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from bgci.config import Config, split_address
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.platforms import Platform
from bgci.routers import RouterSpec, attached, router_url
from bgci.routers.traefik import TraefikRouter, applied, dump, render_dynamic


class AttachedTraefikRouter(TraefikRouter):
    def __init__(self, config: Config, platform: Platform) -> None:  # not ours: no router host
        self.config = config
        self.app = config.app
        self.host = attached.UserHost()
        self.dynamic_dir = str(attached.user_path(config, config.router.config_dir))
        self.dynamic = f"{self.dynamic_dir}/bgci-{config.app}.yml"
        self.static = ""
        self.api = config.router.admin_url.rstrip("/")
        listen_host, listen_port = split_address(config.router.listen)
        preview_host, preview_port = split_address(config.router.preview)
        public = platform.public_host()
        self.live_url = router_url(listen_host, listen_port, public)
        self.preview_url = router_url(preview_host, preview_port, public)
        self.ports = (listen_port, preview_port)
        self.spec = RouterSpec(name=f"your Traefik ({self.api})", image="", command=[],
                               ports={}, labels={})
        self._backends: dict[Colour, str] = {}
        self._entry: tuple[str, str] | None = None

    def _api_url(self) -> str:
        return self.api

    def _entry_points(self) -> tuple[str, str]:
        """The user's entry points on router.listen's and router.preview's ports."""
        if self._entry is None:
            try:
                response = requests.get(f"{self.api}/api/entrypoints", timeout=5)
                response.raise_for_status()
                found = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise InfraError(f"{self.spec.name}: its API does not answer: {exc}",
                                 "is Traefik running with api.insecure on router.admin_url? "
                                 "nothing was changed") from exc
            by_port: dict[int, str] = {}
            for entry in found if isinstance(found, list) else []:
                port = str(entry.get("address", "")).rpartition(":")[2]
                if port.isdigit():
                    by_port.setdefault(int(port), str(entry.get("name")))
            keys = ("router.listen", "router.preview")
            missing = [key for key, port in zip(keys, self.ports, strict=True) if port not in by_port]
            if missing:
                raise InfraError(
                    f"{self.spec.name} has no entry point on the port of "
                    f"{' and '.join(missing)} ({', '.join(str(p) for p in self.ports)})",
                    "add entry points for the live and preview addresses to Traefik's static "
                    "config (see docs/routers.md); nothing was changed")
            self._entry = (by_port[self.ports[0]], by_port[self.ports[1]])
        return self._entry

    def _render(self, live: Colour | None) -> dict[str, Any]:
        return render_dynamic(self.app, self._backends, live, self._entry_points())

    def _apply(self, doc: Mapping[str, Any]) -> None:
        previous = attached.read(self.dynamic)
        attached.write(self.dynamic, dump(doc))
        try:
            self._wait_applied(doc)
        except InfraError:
            attached.restore(self.dynamic, previous)  # also: no file at all, as before
            raise

    def ensure(self, backends: Mapping[Colour, str], log: Log) -> None:
        self._backends = {c: a for c, a in backends.items() if a}
        raw = self._rawdata()
        if raw is None:
            raise InfraError(f"{self.spec.name}: its API does not answer",
                             "is Traefik running with its API on router.admin_url? nothing was "
                             "changed")
        live = self.live()
        doc = self._render(live)
        if self._load(self.dynamic) != doc or not applied(raw, doc):
            self._apply(doc)

    def live(self) -> Colour | None:
        raw = self._rawdata()
        if raw is None:
            raise InfraError(f"{self.spec.name}: its API does not answer",
                             "is Traefik running with its API on router.admin_url?")
        if f"{self.app}-live@file" not in (raw.get("routers") or {}):
            return self._file_live()  # not loaded (yet): what bgci's file says, if there is one
        return super().live()

    def stop(self, log: Log) -> None:
        log.info(f"router.managed = false: bgci leaves {self.spec.name} running "
                 f"({self.dynamic} stays)")
