"""HAProxy the user runs (``router.managed = false``): bgci drives its runtime API, never reloads it.

bgci owns a map file (``router.map_file``: keys ``live`` and ``preview``) and two backends,
``bgci-<app>-blue`` and ``bgci-<app>-green``, each with one server ``app``; the user's haproxy.cfg
declares them and routes with them (docs/routers.md has the snippet)::

    use_backend bgci-shop-%[str(live),map(/etc/haproxy/bgci-shop.map,none)]

A switch is two ``set map`` commands over ``router.admin_socket``, exactly as with a managed
HAProxy; bgci then rewrites the map file, so that the user's next restart or reload of HAProxy
keeps the live colour. Server addresses are set at runtime on every stage (HAProxy's
``server-state-file`` keeps them across the user's reloads). Nothing else of the user's is written.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from bgci.config import Config, split_address
from bgci.errors import InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour, other
from bgci.platforms import Platform
from bgci.routers import attached, router_url
from bgci.routers.haproxy import HAProxyRouter, parse_map, render_map


class AttachedHAProxyRouter(HAProxyRouter):
    def __init__(self, config: Config, platform: Platform) -> None:  # no router host: not ours
        self.config = config
        self.app = config.app
        socket_value = config.router.admin_socket
        self.tcp = "/" not in socket_value and ":" in socket_value
        self.admin_at = socket_value if self.tcp else str(attached.user_path(config, socket_value))
        self.map = config.router.map_file  # as haproxy.cfg names it: the runtime API's key
        self.map_path = attached.user_path(config, self.map)
        listen_host, listen_port = split_address(config.router.listen)
        preview_host, preview_port = split_address(config.router.preview)
        public = platform.public_host()
        self.live_url = router_url(listen_host, listen_port, public)
        self.preview_url = router_url(preview_host, preview_port, public)
        self.dns: dict[Colour, str] = {}
        self.slots = 1
        self._backends: dict[Colour, str] = {}

    def _where(self) -> str:
        return f"your HAProxy's runtime API at {self.admin_at}"

    def _admin(self, command: str) -> str:
        try:
            if self.tcp:
                host, port = split_address(self.admin_at)
                sock = socket.create_connection((host, port), timeout=10)
            else:
                sock = attached.connect_unix(self.admin_at)
            with sock:
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise InfraError(f"{self._where()} does not answer: {exc}",
                             "is HAProxy running with that stats socket at level admin? nothing "
                             "was changed") from exc
        return b"".join(chunks).decode("utf-8", "replace")

    def _backend(self, colour: Colour) -> str:
        return f"bgci-{self.app}-{colour}"

    def ensure(self, backends: Mapping[Colour, str], log: Log) -> None:
        self._backends = {c: a for c, a in backends.items() if a}
        maps = self._admin("show map")
        if f"({self.map})" not in maps:
            raise InfraError(
                f"{self._where()} has no map {self.map} (router.map_file)",
                f"route with it in haproxy.cfg, e.g. use_backend bgci-{self.app}-%[str(live),"
                f"map({self.map},none)], and give router.map_file exactly as haproxy.cfg names it")
        for colour in COLOURS:
            answer = self._admin(f"show servers state {self._backend(colour)}")
            if "Can't find backend" in answer or f" {self._backend(colour)} " not in answer:
                raise InfraError(
                    f"{self._where()} has no backend {self._backend(colour)} with a server app",
                    f"declare it in haproxy.cfg: backend {self._backend(colour)} / http-response "
                    f"set-header X-Bgci-Color {colour} / server app 127.0.0.1:1 disabled "
                    "(see docs/routers.md)")
        entries = parse_map(self._admin(f"show map {self.map}"))
        missing = [key for key in ("live", "preview") if key not in entries]
        if missing:  # an empty map file: `set map` only changes entries that exist
            saved = parse_map((attached.read(self.map_path) or b"").decode("utf-8", "replace"))
            first = {"live": saved.get("live", "none"), "preview": saved.get("preview", "blue")}
            self._admin_checked(";".join(f"add map {self.map} {key} {first[key]}" for key in missing))
        self._sync_servers()

    def _persist(self, live: Colour | None) -> None:
        data = render_map(live).encode()
        if attached.read(self.map_path) != data:
            attached.write(self.map_path, data)

    def describe_switch(self, live: Colour) -> str:
        return (f"{self._where()}:\n  set map {self.map} live {live}\n"
                f"  set map {self.map} preview {other(live)}\n"
                f"then {self.map_path} rewritten to the same, for HAProxy's next start")

    def stop(self, log: Log) -> None:
        log.info("router.managed = false: bgci leaves your HAProxy running")
