"""Routers: what sends live and preview traffic to a colour.

One module per ``router.kind`` (``haproxy.py``, ``traefik.py``, ``nginx.py``, ``caddy.py``), each a
class implementing ``bgci.ports.Router`` built from ``(config, host, endpoints)`` and a ``KIND``
declaring it for ``bgci.registry``. A router never asks which platform it serves: it runs on the
``RouterHost`` it is given, managed (a container, a service, a local process) or the user's own.
This package holds what the router modules share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from bgci.model import Colour
from bgci.ports import Endpoints, RouterHost, RouterSpec
from bgci.settings import Config, split_address

# The ports a managed router binds inside its container (the engine publishes them on
# router.listen and router.preview); a local router binds router.listen and router.preview itself.
LIVE_PORT, PREVIEW_PORT = 8080, 8081


def router_url(host: str, port: int, public: str) -> str:
    """The URL of a router address; a wildcard host (``0.0.0.0``, ``::``) becomes ``public``."""
    if host in ("", "0.0.0.0", "::"):
        host = public
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def endpoints(config: Config, public: str) -> Endpoints:
    """router.listen and router.preview, and the URLs the runner reaches them by."""
    live, preview = split_address(config.router.listen), split_address(config.router.preview)
    return Endpoints(live=live, preview=preview, live_url=router_url(*live, public),
                     preview_url=router_url(*preview, public))


def router_spec(kind: str, config: Config, host: RouterHost, where: Endpoints, *, image: str,
                command: list[str], template: str, facts: tuple[object, ...] = (),
                name: str = "") -> RouterSpec:
    """The spec of a ``kind`` router for this app: its name, image or binary, command, the ports
    it publishes and its labels, with a fingerprint of everything that needs a new router when it
    changes (image, ports, the template version and the kind's own ``facts``).

    ``name`` is what a user's own router is called in messages (``router.managed = false``).
    """
    ports = {LIVE_PORT: where.live, PREVIEW_PORT: where.preview}
    fingerprint = hashlib.sha256(
        repr((image, sorted(ports.items()), template, *facts)).encode()).hexdigest()[:16]
    return RouterSpec(
        name=f"bgci-{config.app}-router" if host.managed else name,
        image=image,
        command=command,
        ports=ports,
        labels={"org.bgci.router": kind, "org.bgci.fingerprint": fingerprint},
    )


def is_current(host: RouterHost, spec: RouterSpec) -> bool:
    """Whether the router ``spec`` describes runs on ``host`` now, as ``spec`` would start it
    (the same fingerprint). A router the user runs always counts as current: bgci never starts it."""
    if not host.managed:
        return True
    return host.running(spec) and host.label(
        spec, "org.bgci.fingerprint") == spec.labels["org.bgci.fingerprint"]


class RouterBase:
    """What every router module's class starts from: its config, its host (managed or the
    user's), its two URLs and the colours' server addresses; ``set_backend`` updates those and
    hands them to the router (``_apply_backends``)."""

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        self.config = config
        self.app = config.app
        self.host = host
        self.managed = host.managed
        self.live_url, self.preview_url = where.live_url, where.preview_url
        self._backends: dict[Colour, str] = {}

    def _take_backends(self, backends: Mapping[Colour, str]) -> None:
        self._backends = {colour: address for colour, address in backends.items() if address}

    def set_backend(self, colour: Colour, address: str | None) -> None:
        """Point ``colour``'s server at ``host:port`` (None: no server, 503)."""
        if address:
            self._backends[colour] = address
        else:
            self._backends.pop(colour, None)
        self._apply_backends()

    def _apply_backends(self) -> None:
        raise NotImplementedError
