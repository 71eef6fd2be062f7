"""DNS: live and preview are two names on your authoritative server, pointed at the colours'
addresses by RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS accept them).

bgci is not in the traffic path here: clients resolve ``router.dns_live_name`` and connect to the
address it names, on ``platform.port``. So each colour needs an address of its own
(``platform.hosts``), and:

- a switch is one update that replaces both names' record sets at once (the server applies all of
  it or nothing); it is confirmed through the authoritative server (each confirmation request
  resolves the name there again and goes to the address it gets), then the stage waits out the
  record's TTL, and a second (resolvers count whole seconds), before it calls the cut-over done:
  resolvers that cached the old answer keep sending new clients to the old colour until then,
  and it keeps running;
- the colour that answered is the colour whose address the name resolved to (the app adds no
  ``X-Bgci-Color`` unless it sets one itself; when it does, the two must agree);
- connections already open stay on the colour they were opened to: nothing of bgci's sits
  between them to close them.

The live colour is read back from the server (the live name's address); bgci never runs the DNS
server (``router.managed = false`` is required) and touches nothing in the zone but its two names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from bgci.errors import ConfigError, InfraError, Refused
from bgci.log import Log
from bgci.model import COLOURS, Colour, other
from bgci.ports import Counters, Endpoints, Reach, RouterHost, RouterKind
from bgci.routers import RouterBase, router_spec
from bgci.settings import TSIG_ALGORITHMS, Config

# a zone's records are its own: there is no template of bgci's to upgrade
TEMPLATE_VERSION = "1"
MAX_TTL = 3600  # a switch waits the TTL out: beyond an hour a pipeline looks hung
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def record_type(address: str) -> str:
    """A for an IPv4 address, AAAA for an IPv6 one."""
    return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"


def same_address(a: str, b: str) -> bool:
    """Whether two textual IP addresses are the same address (IPv6 has many spellings)."""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def absolute(name: str) -> str:
    """``name`` with its final dot (how a zone file and dnspython spell a full name)."""
    return name if name.endswith(".") else name + "."


def split_server(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, a bare host or IPv6 address (port 53) into its parts."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, 53


def url_of(name: str, port: int) -> str:
    host = name.rstrip(".")
    return f"http://{host}:{port}"


def _ip_url(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


class DnsRouter(RouterBase):
    """Two names of a zone on the user's authoritative server, always attached."""

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        super().__init__(config, host, where)
        # dnspython takes ~80 ms to import: only a run that talks to the DNS server pays it, not
        # every `bgci --help` or a run with another router (the registry imports every KIND)
        from bgci.routers.dns_records import TsigKey, Zone

        router = config.router
        server_host, server_port = split_server(router.dns_server)
        self.zone = Zone(server_host, server_port, absolute(router.dns_zone),
                         TsigKey(router.dns_key_name, router.dns_key_algorithm,
                                 router.dns_key_secret_env))
        self.names = {"live": absolute(router.dns_live_name),
                      "preview": absolute(router.dns_preview_name)}
        self.ttl = router.dns_ttl
        self.port = config.platform.port
        self.hosts = dict(config.platform.hosts)
        self.live_url = url_of(self.names["live"], self.port)
        self.preview_url = url_of(self.names["preview"], self.port)
        self.spec = router_spec("dns", config, host, where, image="", command=[],
                                template=TEMPLATE_VERSION,
                                name=f"the DNS server {self.zone.server}")

    # -- the colours' addresses -----------------------------------------------------------
    def _address(self, colour: Colour) -> str:
        """The IP address ``colour`` answers at: where bgci started it, else platform.hosts."""
        address = self._backends.get(colour, "")
        host = address.rpartition(":")[0].strip("[]") if address else ""
        return host or self.hosts[colour]

    def _colour_at(self, address: str) -> Colour | None:
        return next((c for c in COLOURS if same_address(self._address(c), address)), None)

    def _rdtype(self) -> str:
        return record_type(self._address("blue"))

    def _records(self, name: str) -> list[str]:
        return self.zone.addresses(name, self._rdtype())

    def _wanted(self, live: Colour | None) -> dict[str, str]:
        """name -> address with ``live`` live: the preview name on the other colour (blue
        before anything is live); the live name left alone while nothing is live."""
        wanted = {self.names["live"]: self._address(live)} if live else {}
        wanted[self.names["preview"]] = self._address(other(live) if live else "blue")
        return wanted

    def _differing(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """The names of ``wanted`` whose record set is not that one address now."""
        changes = {}
        for name, address in wanted.items():
            found = self._records(name)
            if len(found) != 1 or not same_address(found[0], address):
                changes[name] = address
        return changes

    def _replace(self, records: Mapping[str, str]) -> None:
        self.zone.replace(records, self._rdtype(), self.ttl)

    # -- Router ---------------------------------------------------------------------------
    def live(self) -> Colour | None:
        found = self._records(self.names["live"])
        return self._colour_at(found[0]) if len(found) == 1 else None

    def reach(self, url: str) -> Reach:
        role = "live" if url == self.live_url else "preview" if url == self.preview_url else ""
        if not role:
            return Reach(url)
        name = self.names[role].rstrip(".")
        try:
            found = self._records(self.names[role])
        except InfraError as exc:  # a server that does not answer: the probe fails, saying why
            return Reach(url, problem=exc.message)
        if not found:
            return Reach(url, problem=f"{name} has no {self._rdtype()} record on the DNS server "
                                      f"{self.zone.server}")
        if len(found) > 1:
            return Reach(url, problem=f"{name} resolves to {len(found)} addresses "
                                      f"({', '.join(found)}) on {self.zone.server}; bgci sets one")
        colour = self._colour_at(found[0])
        if colour is None:
            return Reach(url, problem=f"{name} resolves to {found[0]}, the address of neither "
                                      f"colour (blue {self._address('blue')}, green "
                                      f"{self._address('green')})")
        return Reach(_ip_url(found[0], self.port), host=f"{name}:{self.port}", colour=colour)

    def stale_for(self) -> float:
        # resolvers count a TTL in whole seconds: one that fetched the old answer just before
        # the update may serve it up to TTL + 1 s later (measured: tests/e2e/test_e2e_dns.py)
        return float(self.ttl + 1)

    def counters(self) -> Counters | None:
        return None  # a DNS server sees no HTTP request: the bake judges by bgci's own probes

    def switch(self, live: Colour) -> None:
        self._replace(self._wanted(live))

    def _sync(self, log: Log) -> None:
        live = self.live()
        changes = self._differing(self._wanted(live))
        if changes:
            log.info(f"DNS {self.zone.server}: pointing "
                     f"{', '.join(f'{n} at {a}' for n, a in changes.items())}")
            self._replace(changes)

    def _apply_backends(self) -> None:
        changes = self._differing(self._wanted(self.live()))
        if changes:
            self._replace(changes)

    def _start(self, live: Colour | None, log: Log) -> None:
        raise Refused("router.kind = \"dns\": bgci never runs your DNS server",
                      "start it yourself; bgci only changes its two records")

    def _saved_live(self) -> Colour | None:
        return None  # the zone itself is the record: nothing of bgci's keeps a copy

    def describe_switch(self, live: Colour) -> str:
        lines = [f"one RFC 2136 update of zone {self.zone.zone.to_text()} on {self.zone.server}, "
                 f"signed with TSIG key {self.zone.key.name!r} ({self.zone.key.algorithm}); "
                 "both record sets are replaced in the same message:"]
        for name, address in self._wanted(live).items():
            before = ", ".join(self._records(name)) or "no record"
            lines.append(f"  {name} {self._rdtype()}: {before} -> {address} (TTL {self.ttl})")
        lines.append(f"then new requests resolved at {self.zone.server} must reach {live}, and the "
                     f"stage waits out the TTL and a second ({self.ttl + 1}s) before it calls the "
                     "cut-over done")
        return "\n".join(lines) + "\n"

    def inflight(self, colour: Colour) -> int:
        return 0  # no request goes through bgci: there is nothing to count

    def disconnect(self, colour: Colour) -> str:
        return (f"connections already open to {colour} stay there until they end (DNS is not in "
                "their path; `bgci retire` stops the colour)")

    def stop(self, log: Log) -> None:
        log.info(f"router.kind = \"dns\": bgci leaves {', '.join(self.names.values())} as they "
                 "are on your DNS server")


# -- the configuration ---------------------------------------------------------------------------
def _check(config: Config) -> None:
    router, at = config.router, config.origin
    for key in ("listen", "preview"):
        if f"router.{key}" in config.origins:
            raise ConfigError(f"{at('router.' + key)}: router.{key} is not used with router.kind = "
                              "\"dns\": clients reach router.dns_live_name (verify: "
                              "dns_preview_name) at each colour's own address, on platform.port",
                              f"remove router.{key}")
    try:
        host, port = split_server(router.dns_server)
    except ValueError:
        host, port = "", 0
    if not host or not 1 <= port <= 65535:
        raise ConfigError(f"{at('router.dns_server')}: router.dns_server = {router.dns_server!r} "
                          "must be host:port (or a host: port 53)", "e.g. 10.0.0.53:53")
    zone = absolute(router.dns_zone).lower()
    for key in ("dns_zone", "dns_live_name", "dns_preview_name"):
        value = getattr(router, key)
        if not _NAME.match(value) or len(value.rstrip(".")) > 253:
            raise ConfigError(f"{at('router.' + key)}: router.{key} = {value!r} is not a DNS name",
                              "e.g. www.example.com")
        if key != "dns_zone" and not ("." + absolute(value).lower()).endswith("." + zone):
            raise ConfigError(f"{at('router.' + key)}: router.{key} = {value!r} is not in "
                              f"router.dns_zone = {router.dns_zone!r}",
                              "a dynamic update changes names of its own zone only")
    if absolute(router.dns_live_name).lower() == absolute(router.dns_preview_name).lower():
        raise ConfigError(f"{at('router.dns_preview_name')}: router.dns_live_name and "
                          "router.dns_preview_name must differ")
    if not 0 <= router.dns_ttl <= MAX_TTL:
        raise ConfigError(f"{at('router.dns_ttl')}: router.dns_ttl = {router.dns_ttl} must be 0-"
                          f"{MAX_TTL} s: switch and rollback wait it out",
                          "lower the record's TTL a day before the first switch, e.g. 60")
    if router.dns_key_algorithm not in TSIG_ALGORITHMS:
        raise ConfigError(f"{at('router.dns_key_algorithm')}: router.dns_key_algorithm = "
                          f"{router.dns_key_algorithm!r} is not supported (supported: "
                          f"{', '.join(TSIG_ALGORITHMS)})", "the algorithm of the key in your "
                          "server's config, e.g. hmac-sha256 (tsig-keygen's default)")
    if not _VARIABLE.match(router.dns_key_secret_env):
        # it never says what is there: it may be the secret itself
        raise ConfigError(f"{at('router.dns_key_secret_env')}: router.dns_key_secret_env must "
                          "name the environment variable that holds the TSIG secret (letters, "
                          "digits, _), not hold the secret", "e.g. BGCI_DNS_KEY_SECRET")
    if not config.platform.hosts:
        raise ConfigError(f"{at('router.kind')}: router.kind = \"dns\" needs each colour at an "
                          "address of its own (a DNS record names an address, not a port): set "
                          "platform.hosts on the process platform",
                          'e.g. [platform] hosts = { blue = "10.0.0.11", green = "10.0.0.12" } '
                          'and command = "gunicorn app:app -b {host}:{port}"')


def _secret_vars(config: Config) -> tuple[str, ...]:
    name = config.router.dns_key_secret_env
    return (name,) if name else ()


KIND = RouterKind(name="dns", make=DnsRouter,
                  attach=("dns_server", "dns_zone", "dns_live_name", "dns_preview_name",
                          "dns_key_name", "dns_key_secret_env"),
                  check=_check, manageable=False, secret_vars=_secret_vars)
