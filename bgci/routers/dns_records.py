"""Two records on an authoritative DNS server: read with plain queries, replaced with one RFC 2136
dynamic update signed with TSIG (dnspython). BIND, Knot and PowerDNS accept these.

An update names the zone, and for each name deletes its whole record set of the type and adds the
one new record, all in one message: the server applies all of it or none of it (RFC 2136 3.4), so
the live and the preview name move together, and a refused update changes nothing.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from bgci.errors import ConfigError, InfraError

TIMEOUT = 3.0  # seconds per query or update
TRIES = 2  # a query is asked again once when its UDP answer is lost


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key: its name, algorithm and the environment variable its secret is in."""

    name: str
    algorithm: str
    secret_env: str

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        """The key with its secret, read from the environment only now (ConfigError, exit 2,
        naming the variable, never the value, when it is unset or not base64)."""
        secret = os.environ.get(self.secret_env, "")
        if not secret:
            raise ConfigError(f"the TSIG secret of key {self.name!r} is not in the environment: "
                              f"{self.secret_env} is not set (router.dns_key_secret_env)",
                              f"export {self.secret_env} (a CI secret variable); nothing was changed")
        try:
            return {dns.name.from_text(self.name):
                    dns.tsig.Key(self.name, secret, self.algorithm)}
        except (ValueError, dns.exception.DNSException):
            raise ConfigError(f"{self.secret_env} does not hold a TSIG secret: it must be base64, "
                              "as tsig-keygen prints it", "nothing was changed") from None


class Zone:
    """One zone on one authoritative server (``host``, ``port``)."""

    def __init__(self, host: str, port: int, zone: str, key: TsigKey) -> None:
        self.host, self.port = host, port
        self.zone = dns.name.from_text(zone)
        self.key = key
        self._ip = ""

    @property
    def server(self) -> str:
        """The server as messages name it."""
        return f"{self.host} port {self.port}"

    @property
    def ip(self) -> str:
        """The server's address: ``host`` itself, or what this machine resolves its name to."""
        if not self._ip:
            try:
                ipaddress.ip_address(self.host)
                self._ip = self.host
            except ValueError:
                try:
                    self._ip = str(socket.getaddrinfo(self.host, self.port, proto=socket.IPPROTO_UDP)
                                   [0][4][0])
                except OSError as exc:
                    raise InfraError(f"the DNS server {self.server} cannot be found: {exc}",
                                     "router.dns_server: its IP address, or a name this machine "
                                     "resolves") from exc
        return self._ip

    def addresses(self, name: str, rdtype: str) -> list[str]:
        """The addresses the server itself holds for ``name`` (empty: no such record); InfraError
        when it does not answer, or answers without authority (not the zone's server)."""
        query = dns.message.make_query(name, rdtype)
        for attempt in range(TRIES):
            try:
                response, _ = dns.query.udp_with_fallback(query, self.ip, port=self.port,
                                                          timeout=TIMEOUT)
                break
            except dns.exception.Timeout:
                if attempt == TRIES - 1:
                    raise InfraError(f"the DNS server {self.server} does not answer (no answer "
                                     f"for {name} {rdtype} in {TIMEOUT * TRIES:.0f}s)",
                                     "is router.dns_server right and the server up?") from None
            except (OSError, dns.exception.DNSException) as exc:
                raise InfraError(f"the DNS server {self.server} does not answer ({exc})",
                                 "is router.dns_server right and the server up?") from exc
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or not (
                response.flags & dns.flags.AA):
            raise InfraError(f"the DNS server {self.server} answers for {name} without authority "
                             f"({dns.rcode.to_text(rcode)}): bgci reads and changes the records "
                             f"on the zone's own server", f"point router.dns_server at the primary "
                             f"server of {self.zone.to_text(omit_final_dot=True)}")
        wanted = dns.rdatatype.from_text(rdtype)
        return [item.to_text() for rrset in response.answer if rrset.rdtype == wanted
                for item in rrset]

    def replace(self, records: Mapping[str, str], rdtype: str, ttl: int) -> None:
        """Point each name of ``records`` at its address alone (an ``rdtype`` record, A or AAAA)
        with ``ttl``, in one update.

        InfraError (exit 3) when the server refuses it (wrong key, no permission, not the zone's
        primary) or does not answer; the update is applied whole or not at all, so a refusal
        changed nothing."""
        update = dns.update.UpdateMessage(self.zone, keyring=self.key.keyring(),
                                          keyname=dns.name.from_text(self.key.name),
                                          keyalgorithm=self.key.algorithm)
        for name, address in records.items():
            update.delete(name, rdtype)
            update.add(name, ttl, rdtype, address)
        refused = (f"the DNS server {self.server} refused bgci's update of "
                   f"{', '.join(records)} (key {self.key.name!r})")
        try:
            # TCP: an update is not retried over UDP, where a lost answer would mean sending twice
            response = dns.query.tcp(update, self.ip, port=self.port, timeout=TIMEOUT)
        except dns.tsig.PeerError as exc:
            raise InfraError(f"{refused}: it does not accept the TSIG key ({exc})",
                             "check router.dns_key_name, dns_key_algorithm and the secret in "
                             f"{self.key.secret_env}; nothing was changed, live traffic is where "
                             "it was") from None
        except (OSError, dns.exception.DNSException) as exc:
            raise InfraError(f"the DNS server {self.server} does not take updates ({exc})",
                             "is router.dns_server right and the server up? nothing was "
                             "changed") from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise InfraError(f"{refused}: {dns.rcode.to_text(rcode)}",
                             "NOTAUTH: the key is wrong or the server is not the zone's primary; "
                             "REFUSED: the zone does not allow this key to update it "
                             "(allow-update / update-policy); nothing was changed, live traffic "
                             "is where it was")
