"""What bgci gives Caddy: its two servers (live and preview) and, for a managed Caddy, the whole
config. JSON documents in, JSON documents out.

Neither the live colour nor the colours' addresses are in the config: they are in files of one
directory of bgci's, which Caddy reads on every request (the ``{file.*}`` placeholder): ``colour``
(blue, green or none), mapped to the colour an address serves (a ``map`` handler), and
``blue.addr`` / ``green.addr`` (``host:port``; empty: that colour runs nothing). A switch
replaces ``colour``, a deploy a colour's ``.addr``, each in one rename: Caddy is never reloaded
for either. The config is the same for the app's whole life (but for its listen addresses).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bgci.health import COLOUR_HEADER
from bgci.model import COLOURS, Colour

COLOUR_PATH = "/.bgci/colour"  # answered by Caddy itself: the colour it serves there now
# the per-request variables the map handler sets
COLOUR, ADDRESS = "{bgci_colour}", "{bgci_address}"
WORD = "bgci_live"  # the colour file's word, as this request read it


def seconds(value: float) -> str:
    return f"{max(1, round(value))}s"


def _static(status: int, body: str, colour: bool) -> dict[str, Any]:
    headers = {"Content-Type": ["text/plain; charset=utf-8"]}
    return {"handler": "static_response", "status_code": status, "body": body,
            "headers": {**headers, COLOUR_HEADER: [COLOUR]} if colour else headers}


def colour_file(directory: str) -> str:
    return f"{directory}/colour"


def address_file(directory: str, colour: Colour) -> str:
    return f"{directory}/{colour}.addr"


def render_route(app: str, role: str, directory: str, *, drain: float = 10.0) -> dict[str, Any]:
    """The route of one address: the colour file's word mapped to the colour this address
    serves (live: that colour; preview: the other one, blue while nothing is live) and to the
    file of its address; then a proxy to it naming the colour, or a 503 where it runs nothing."""
    def serves(word: str) -> Colour | None:
        if role == "live":
            return "blue" if word == "blue" else "green" if word == "green" else None
        return "blue" if word in ("green", "none") else "green"

    def outputs(word: str) -> list[str]:
        colour = serves(word)
        return [colour, f"{{file.{address_file(directory, colour)}}}"] if colour else ["none", ""]

    # the file read once per request (a vars handler expands it as it sets it), so that the
    # address dialled and the colour named in the answer are the same even across a switch
    read = {"handler": "vars", WORD: f"{{file.{colour_file(directory)}}}"}
    mapping = {"handler": "map", "source": f"{{http.vars.{WORD}}}",
               "destinations": [COLOUR, ADDRESS],
               "mappings": [{"input": word, "outputs": outputs(word)} for word in COLOURS],
               "defaults": outputs("none")}
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": ADDRESS}],
             "headers": {"response": {"set": {COLOUR_HEADER: [COLOUR]}}},
             # WebSockets through an old config: closed this long after a reload
             "stream_close_delay": seconds(drain)}
    routes = [
        {"match": [{"path": [COLOUR_PATH]}], "handle": [_static(200, COLOUR, colour=False)],
         "terminal": True},
        {"match": [{"vars": {COLOUR: ["none"]}}],
         "handle": [_static(503, "bgci: no colour is live here yet\n", colour=False)],
         "terminal": True},
        {"match": [{"vars": {ADDRESS: [""]}}],
         "handle": [_static(503, f"bgci: {COLOUR} is not running\n", colour=True)],
         "terminal": True},
        {"handle": [proxy]},
    ]
    return {"@id": f"bgci-{app}-{role}",
            "handle": [read, mapping, {"handler": "subroute", "routes": routes}]}


def render_servers(app: str, directory: str, *, listen: Mapping[str, str],
                   drain: float = 10.0) -> dict[str, Any]:
    """bgci's two servers, by name: ``listen`` maps "live"/"preview" to a Caddy address."""
    return {f"bgci-{app}-{role}": {"listen": [listen[role]],
                                   "routes": [render_route(app, role, directory, drain=drain)],
                                   "automatic_https": {"disable": True}}
            for role in ("live", "preview")}


def render_config(servers: Mapping[str, Any], *, admin: str, storage: str,
                  drain: float) -> dict[str, Any]:
    """The whole config of a managed Caddy."""
    return {
        "admin": {"listen": admin, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "storage": {"module": "file_system", "root": storage},
        # requests in flight through an old config finish within switch.drain
        # metrics: per-server request counters and durations at the admin API's /metrics,
        # which the bake reads
        "apps": {"http": {"grace_period": seconds(drain), "metrics": {},
                          "servers": dict(servers)}},
    }


def route_colour(route: Any) -> Colour | None:
    """The colour a route written by an earlier bgci answered with (it named the colour itself;
    None: it is not one, or names none)."""
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
