"""Routers: what sends live and preview traffic to a colour.

One module per ``router.kind`` (``haproxy.py``, ``traefik.py``, ``nginx.py``, ``caddy.py``), each a
class implementing ``bgci.ports.Router`` built from ``(config, host, endpoints)`` and a ``KIND``
declaring it for ``bgci.registry``. A router never asks which platform it serves: it runs on the
``RouterHost`` it is given, managed (a container, a service, a local process) or the user's own.
This package holds what the router modules share.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping

from bgci.errors import InfraError, Refused
from bgci.faults import router_template
from bgci.log import Log
from bgci.model import Colour, other
from bgci.ports import Endpoints, Reach, RouterHost, RouterSpec
from bgci.settings import Config, split_address
from bgci.timings import waits_on

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


def switch_dir(path: str) -> None:
    """Make ``path`` (on this machine) the directory of a switch file the router reads on every
    request: only bgci's user may write in it (0755), and it must be that user's, so that no one
    else can make the router send live traffic elsewhere."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    owner = os.stat(path).st_uid
    if owner != os.geteuid():
        raise InfraError(f"{path} belongs to uid {owner}, not to the user bgci runs as "
                         f"(uid {os.geteuid()}): whoever owns it could switch live traffic, so bgci "
                         "does not use it; nothing was changed",
                         "remove it (bgci makes it again), or run bgci as its owner")
    os.chmod(path, 0o755)


@waits_on("router")
def wait_colours(serving: Callable[[str], str | None], where: Endpoints, live: Colour | None,
                 timeout: float, confirmations: int = 5) -> bool:
    """Until the live address answers ``live`` (or "none") and the preview address the other
    colour (blue while nothing is live), ``confirmations`` new connections in a row, as
    ``serving(url)`` reads them (None: no answer); False after ``timeout`` s."""
    wanted = (live or "none", other(live) if live else "blue")
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < confirmations:
        seen = (serving(where.live_url), serving(where.preview_url))
        streak = streak + 1 if seen == wanted else 0
        if streak < confirmations and time.monotonic() > deadline:
            return False
    return True


def router_spec(kind: str, config: Config, host: RouterHost, where: Endpoints, *, image: str,
                command: list[str], template: str, legacy_facts: tuple[object, ...] = (),
                legacy_images: tuple[str, ...] = (), labels: Mapping[str, str] | None = None,
                name: str = "", shared: str = "") -> RouterSpec:
    """The spec of a ``kind`` router for this app: its name, image or binary, command, the ports
    it publishes and its labels: its kind, image and ports, and a fingerprint of what needs a new
    router when it changes (those and the template version). A router that bgci 0.1 started
    carries a fingerprint that also hashed ``legacy_facts``: it is recognised too. So is one an
    earlier bgci started as one of ``legacy_images`` with everything else the same (a local
    router's binary where it was found, before bgci ran a copy of its own).

    ``name`` is what a user's own router is called in messages (``router.managed = false``).
    """
    ports = {LIVE_PORT: where.live, PREVIEW_PORT: where.preview}
    template = router_template(template)

    def fingerprint(*facts: object, of: str = image) -> str:
        return hashlib.sha256(repr((of, sorted(ports.items()), template, *facts)).encode()
                              ).hexdigest()[:16]

    also = {fingerprint(*legacy_facts)} if legacy_facts else set()
    also |= {fingerprint(of=old) for old in legacy_images if old != image}
    return RouterSpec(
        name=f"bgci-{config.app}-router" if host.managed else name,
        image=image,
        command=command,
        ports=ports,
        labels={"org.bgci.router": kind, "org.bgci.fingerprint": fingerprint(),
                "org.bgci.image": image, "org.bgci.ports": _ports_text(ports), **(labels or {})},
        also=frozenset(also),
        shared=shared,
    )


def _ports_text(ports: Mapping[int, tuple[str, int]]) -> str:
    return " ".join(f"{host or '*'}:{port}" for _, (host, port) in sorted(ports.items()))


def changes(host: RouterHost, spec: RouterSpec) -> list[str]:
    """What differs between the router running on ``host`` and ``spec`` (empty: it runs as
    ``spec`` would start it, or it does not run, or it is the user's), for people."""
    if not host.managed:
        return []
    running = host.labels(spec)
    fingerprint = running.get("org.bgci.fingerprint")
    if not running or fingerprint == spec.labels["org.bgci.fingerprint"] or fingerprint in spec.also:
        return []
    found = []
    for key, what in (("org.bgci.router", "router.kind"), ("org.bgci.image", "router.image"),
                      ("org.bgci.ports", "router.listen / router.preview")):
        if key in running and running[key] != spec.labels[key]:
            found.append(f"{what}: {running[key]} -> {spec.labels[key]}")
    return found or ["the router's own configuration template (it was started by another version "
                     "of bgci, or with another router.image / router.listen / router.preview)"]


def running_as_configured(host: RouterHost, spec: RouterSpec) -> bool:
    """True when the router runs as ``spec`` would start it (or is the user's); False when it does
    not run (a stage may start it: that heals drift, it changes nothing that serves traffic).

    Refused (exit 4) when it runs with other settings: applying them needs a new router, which
    would cut live traffic, so no stage does it on the side; ``bgci router reboot`` does it.
    """
    if not host.managed:
        return True
    if not host.running(spec):
        return False
    found = changes(host, spec)
    if found:
        raise Refused(
            f"router {spec.name} runs with other settings than the config asks for: "
            f"{'; '.join(found)}. Applying them needs a new router, which would cut live "
            "traffic, so no stage does it on the side; nothing was changed",
            "`bgci router reboot` applies them now (live traffic is cut while the router "
            "restarts: a second or two); or put the old settings back in the config")
    return True


class RouterBase:
    """What every router module's class starts from: its config, its host (managed or the
    user's), its two URLs and the colours' server addresses.

    ``ensure`` and ``reboot`` are written once here over four steps each router implements:
    ``_start(live, log)`` (start the router sending live traffic to ``live``), ``_sync(log)``
    (bring a running router's servers up to date, hitlessly), ``_saved_live()`` (the live colour
    its own files keep) and ``_apply_backends()`` (after ``set_backend``).
    """

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        self.config = config
        self.app = config.app
        self.host = host
        self.managed = host.managed
        self.live_url, self.preview_url = where.live_url, where.preview_url
        self.endpoints = where
        self._backends: dict[Colour, str] = {}
        self.spec: RouterSpec

    def _take_backends(self, backends: Mapping[Colour, str]) -> None:
        self._backends = {colour: address for colour, address in backends.items() if address}

    def ensure(self, backends: Mapping[Colour, str], live: Colour | None, log: Log) -> bool:
        """Start the router if it does not run (sending live traffic to ``live``, else to what
        its files kept), make each colour's server match ``backends``; Refused (exit 4) when it
        runs with other settings. True when it started the router."""
        self._take_backends(backends)
        if running_as_configured(self.host, self.spec):
            self._sync(log)
            return False
        self._start(live or self._saved_live(), log)
        return True

    def reboot(self, backends: Mapping[Colour, str], live: Colour | None, log: Log) -> None:
        """Stop whatever router runs here (another kind, image or listen address too) and start
        this one, sending live traffic to ``live``."""
        if not self.managed:
            raise Refused(f"router.managed = false: bgci never restarts {self.spec.name}",
                          "restart your router yourself; bgci's part of it is kept in its files")
        self._take_backends(backends)
        # the host's start replaces whatever router runs under this app's router name
        self._start(live or self._saved_live(), log)

    def changes(self) -> list[str]:
        return changes(self.host, self.spec)

    def destroy(self, dry_run: bool) -> list[str]:
        """Remove a managed router and its files (nothing of the user's router)."""
        return self.host.destroy(self.spec, dry_run)

    def set_backend(self, colour: Colour, address: str | None) -> None:
        """Point ``colour``'s server at ``host:port`` (None: no server, 503)."""
        if address:
            self._backends[colour] = address
        else:
            self._backends.pop(colour, None)
        self._apply_backends()

    def reach(self, url: str) -> Reach:
        """A router in the traffic path is reached at its own address and names the colour."""
        return Reach(url)

    def stale_for(self) -> float:
        return 0.0  # the router decides per request: no client keeps going to the old colour

    def settle_for(self) -> float:
        return 0.0  # the router is given the colour's address: what it serves is what it has

    def _start(self, live: Colour | None, log: Log) -> None:
        raise NotImplementedError

    def _sync(self, log: Log) -> None:
        raise NotImplementedError

    def _saved_live(self) -> Colour | None:
        raise NotImplementedError

    def _apply_backends(self) -> None:
        raise NotImplementedError
