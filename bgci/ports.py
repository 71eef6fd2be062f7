"""The ports: what the stages need from a platform, a router, the router's host and a state store.

A leaf of protocols and the value types they exchange. Stages import these, adapters implement
them, and only the composition root (``bgci.registry``) knows which adapter stands behind each:
every import points from a stage or an adapter to here, never from here to either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bgci.log import Log
from bgci.model import Colour, ColourSpec, Instance, Release, iso
from bgci.record import State
from bgci.settings import Config


class Platform(Protocol):
    """Builds releases and runs one per colour (docker containers, swarm services, processes)."""

    name: str

    def build(self, tag: str, log: Log, labels: Mapping[str, str]) -> Release:
        """Build the app (image or release) tagged ``tag``, recording ``labels`` with it (the git
        revision, whether the tree was dirty); push when configured."""

    def tagged(self, tag: str) -> Release | None:
        """What an earlier build tagged ``tag`` left here, if it is still there (None: nothing,
        or not a tag this platform could build): what tells a build that changed nothing."""

    def resolve(self, image: str) -> Release:
        """The release an image reference names, with its digest (ConfigError if unknown)."""

    def has(self, release: Release) -> bool:
        """Whether ``release`` can still be started without a rebuild."""

    def spec(self) -> ColourSpec:
        """What a colour started now would be started with: the ``platform.*`` keys of this
        config that apply here (the port, env, command, replicas)."""

    def start(self, colour: Colour, release: Release, spec: ColourSpec, log: Log) -> Instance:
        """Replace whatever runs on ``colour`` with ``release`` started with ``spec``; return
        once it is started. Only ever called for a colour that does not serve live traffic, or to
        bring back the live colour from its own record when it is not running."""

    def instances(self) -> dict[Colour, Instance]:
        """What runs on each colour now (colours with nothing are absent)."""

    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        """SIGTERM, wait up to ``grace`` s, then kill; removes the colour's instance."""

    def run_once(self, release: Release, command: str, env: dict[str, str], timeout: float, *,
                 spec: ColourSpec | None = None,
                 echo: Callable[[str], None] | None = None) -> tuple[int, str]:
        """Run ``command`` (for ``/bin/sh -c``) once in a throw-away instance of ``release``, with
        the app's environment (``spec``'s when given: a colour's own) plus ``env``: exit code and
        output (124 past ``timeout``; 0: no limit). ``echo`` gets the output as it comes."""

    def logs(self, colour: Colour, lines: int = 40) -> str:
        """The last ``lines`` of the colour's output, for failure reports."""

    def output(self, colour: Colour, *, tail: int | None, since: float | None,
               follow: bool) -> Iterator[str]:
        """The colour's output for ``bgci logs``: the last ``tail`` lines (None: all), only what
        came after the epoch time ``since`` (ConfigError, exit 2, where the platform keeps no
        time per line), and with ``follow`` what comes next, until the colour stops."""

    def built(self, release: Release) -> float | None:
        """When ``release`` was built (epoch seconds); None when it is no longer here."""

    def releases(self) -> list[Release]:
        """Every release of this app that is on the target now (images, release dirs)."""

    def remove(self, release: Release) -> None:
        """Delete ``release`` from the target (its image, its release dir). Only called for a
        release no colour runs."""

    def destroy(self, dry_run: bool) -> list[str]:
        """Remove what the platform made for the app on the target, releases aside: colours (as
        ``stop`` would), networks, one-offs, colour directories; returns what it removed (or,
        with ``dry_run``, would remove), one line each."""

    def failure(self, colour: Colour) -> str:
        """Why ``colour`` cannot become healthy by waiting ("" while it runs): its process or
        container exited, or restarts in a loop, with its exit code and its last log lines."""

    def output_after(self, colour: Colour, cursor: str) -> tuple[str, str]:
        """What ``colour`` wrote to its output after ``cursor``, and the cursor to pass next
        time; ``cursor`` "" starts from now (nothing is returned). The bake's log watch reads
        the new colour's output with it while it serves live traffic."""


@dataclass(frozen=True)
class Traffic:
    """What a router counted for one colour, cumulative since it started counting (a counter
    that only grows, like a Prometheus counter; smaller in a later reading: it restarted).

    ``buckets`` is the response-time histogram where the router keeps one: (upper bound in
    seconds, responses at most that slow), ascending, the last bound ``inf``. ``mean_ms`` is a
    router's own mean response time where it keeps no histogram (HAProxy: of its last 1024)."""

    requests: int = 0
    errors: int = 0  # answered with a 5xx status, by the app or by the router for it
    buckets: tuple[tuple[float, int], ...] = ()
    mean_ms: float | None = None


@dataclass(frozen=True)
class Counters:
    """One reading of a router's counters: per colour, when (``time.time()``), and from what
    (for reports: "HAProxy show stat", "Traefik's metrics", ...)."""

    at: float
    colours: Mapping[Colour, Traffic]
    source: str


@dataclass(frozen=True)
class RouterSpec:
    """How to run a managed router: image/binary, command, and which ports it must publish."""

    name: str
    image: str
    command: list[str]
    ports: Mapping[int, tuple[str, int]]  # port inside -> (host ip, host port)
    labels: Mapping[str, str] = field(default_factory=dict)
    also: frozenset[str] = frozenset()  # fingerprints under which bgci 0.1 started this router
    # a directory of the router's (as it sees it) that a host on this machine shares with bgci
    # when it can (RouterHost.shared): where the router puts the socket of its runtime API
    shared: str = ""


@dataclass(frozen=True)
class Endpoints:
    """The live and preview addresses a router binds (``router.listen``/``router.preview``) and
    the URLs the runner reaches them by (a wildcard host becomes the platform's public host)."""

    live: tuple[str, int]
    preview: tuple[str, int]
    live_url: str
    preview_url: str


@dataclass(frozen=True)
class Reach:
    """Where a fresh client of a router's live or preview URL sends its request right now.

    A router in the traffic path (HAProxy, Traefik, nginx, Caddy) is reached at its own URL and
    names the colour that answered in ``X-Bgci-Color``. A DNS name is resolved first, at the
    authoritative server: the request goes to the address it gives (``url``), with the name in
    the Host header (``host``), and the colour is the one whose address that is (``colour``:
    the app adds no header of its own). ``problem`` says why there is nowhere to send it (no
    record, a server that does not answer, an address of neither colour).
    """

    url: str
    host: str = ""
    colour: Colour | None = None
    problem: str = ""


class RouterHost(Protocol):
    """Where a router process lives: a container or service bgci manages, a local process it
    manages, or the user's own router (``managed`` false: bgci never starts or stops it)."""

    local: bool  # the router runs on this machine: its files and sockets are reachable directly
    managed: bool  # bgci starts and stops it; False: the user's router, bgci only attaches

    @property
    def dns_names(self) -> Mapping[Colour, str]:
        """colour -> ``name:port`` that a router here resolves by itself, continuously, to reach
        that colour (a container or service name on the app's network); empty where each colour
        has one fixed address, given through ``Router.set_backend``."""

    def path(self, name: str) -> str:
        """Absolute path of the router's file ``name``, as the router process sees it (a user's
        path from the config for an attached router: ``~`` and the config's directory applied)."""

    def bind(self, spec: RouterSpec, inner: int) -> str:
        """``host:port`` the router binds for its port ``inner`` (``:inner`` in a container)."""

    def running(self, spec: RouterSpec) -> bool: ...

    def start(self, spec: RouterSpec, files: Mapping[str, bytes], log: Log) -> None:
        """(Re)create and start the router with ``files`` (absolute path -> content) in place."""

    def write(self, spec: RouterSpec, files: Mapping[str, bytes]) -> None:
        """Replace files the router reads, each in one rename (a watcher never sees half a file)."""

    def read(self, spec: RouterSpec, path: str) -> bytes | None: ...

    def remove(self, spec: RouterSpec, path: str) -> None:
        """Remove the router's file ``path`` (nothing when it does not exist)."""

    def execute(self, spec: RouterSpec, argv: list[str]) -> tuple[int, str]:
        """Run ``argv`` beside the router (inside its container); exit code and output."""

    def labels(self, spec: RouterSpec) -> Mapping[str, str]:
        """The labels of the router as it was started (empty when there is none): its kind,
        image, ports and fingerprint, to tell whether it runs as this config would start it."""

    def signal(self, spec: RouterSpec, name: str) -> None:
        """Send the running router's main process the signal ``name`` (e.g. ``USR2``)."""

    def shared(self, spec: RouterSpec, *, starting: bool = False) -> str | None:
        """The directory bind-mounted at the router's ``spec.shared``, on the machine of its
        engine, which is this one unless bgci itself runs in a container: one only bgci's user
        may open. None: not shared (a remote engine, a local or swarm router, one started before
        its host shared it). ``starting``: where a router this host starts now will share it."""

    def stop(self, spec: RouterSpec, log: Log) -> None:
        """Stop the router; its files stay, so the next start keeps the live colour."""

    def destroy(self, spec: RouterSpec, dry_run: bool) -> list[str]:
        """Remove the router and its files for good (``bgci destroy``): what was (or, with
        ``dry_run``, would be) removed, one line each; nothing for the user's router."""


class Router(Protocol):
    """Live and preview traffic for one app."""

    live_url: str
    preview_url: str

    def ensure(self, backends: Mapping[Colour, str], live: Colour | None, log: Log) -> bool:
        """Start the router if it does not run, sending live traffic to ``live`` (None: to what
        its own files kept), and make each colour's server match ``backends``, hitlessly. A router
        that runs with other settings (kind, image, listen address, template) is never restarted
        on the side: Refused (exit 4) naming ``bgci router reboot``. True when it started it."""

    def reboot(self, backends: Mapping[Colour, str], live: Colour | None, log: Log) -> None:
        """Stop whatever router runs here and start it as this config says (``bgci router
        reboot``): live traffic is cut while it restarts."""

    def changes(self) -> list[str]:
        """What differs between the running router and this config (empty: nothing)."""

    def live(self) -> Colour | None:
        """The colour live traffic goes to, read from the router itself (None: nothing yet)."""

    def set_backend(self, colour: Colour, address: str | None) -> None:
        """Point ``colour``'s server at ``host:port`` (None: no server, 503)."""

    def switch(self, live: Colour) -> None:
        """Atomically send live traffic to ``live`` and preview traffic to the other colour."""

    def inflight(self, colour: Colour) -> int:
        """Requests/connections the router has open to ``colour`` now (for draining)."""

    def describe_switch(self, live: Colour) -> str:
        """What ``switch(live)`` would change, for --dry-run: the config diff or the runtime
        commands (and ``nginx -t`` of the new config); changes nothing."""

    def disconnect(self, colour: Colour) -> str:
        """Close what is still open to ``colour`` (streams, WebSockets) once switch.drain is over,
        as far as the router allows; says what was (or will be) closed and by whom."""

    def stop(self, log: Log) -> None:
        """Stop a managed router (for `bgci down`); the live colour is kept for its next start."""

    def destroy(self, dry_run: bool) -> list[str]:
        """Remove a managed router and its files (``bgci destroy``): what was (or would be)
        removed; for the user's router nothing, and it says so."""

    def reach(self, url: str) -> Reach:
        """Where a fresh client of ``url`` (``live_url`` or ``preview_url``) sends its request
        now, and who is there when the answer does not say (changes nothing)."""

    def stale_for(self) -> float:
        """Seconds after a switch during which new clients may still reach the old colour: 0 for
        a router in the traffic path; a DNS record's TTL (resolvers cache the old answer)."""

    def settle_for(self) -> float:
        """Seconds a colour just started must answer healthy through the router, in a row,
        before the router's view of it is settled: 0 for a router given the colour's address;
        a few seconds for one that finds it by DNS and health checks of its own (its last
        answers about the container the colour replaced may still take the colour out)."""

    def counters(self) -> Counters | None:
        """The router's own request counters per colour, read now (None: it keeps none that bgci
        can read, e.g. a router started by an earlier bgci; the bake then judges by its own
        probes). Called every 100 ms from a thread of its own while a switch or rollback runs."""


@dataclass(frozen=True)
class RouterKind:
    """One ``router.kind``, as its module declares it for the registry.

    ``attach`` and ``attach_optional`` are the ``[router]`` keys that attach bgci to a router of
    this kind the user runs (``managed = false``); ``check`` applies the kind's own rules to a
    loaded config (ConfigError, exit 2, naming the key). ``manageable`` is False for a kind bgci
    only ever attaches to (a DNS server); ``secret_vars`` names the environment variables that
    hold its secrets (masked in every log line and report).
    """

    name: str
    make: Callable[[Config, RouterHost, Endpoints], Router]
    attach: tuple[str, ...]
    attach_optional: tuple[str, ...] = ()
    check: Callable[[Config], None] = lambda config: None
    manageable: bool = True
    secret_vars: Callable[[Config], tuple[str, ...]] = lambda config: ()


@dataclass(frozen=True)
class LockInfo:
    """Who holds the deploy lock. ``token`` tells one holder from the next of the same name."""

    holder: str
    job_url: str = ""
    since: float = 0.0
    token: str = ""
    host: str = ""  # where the holder runs, with its pid: a dead local holder's lock is broken at once
    pid: int = 0

    def describe(self) -> str:
        age = time.time() - self.since
        url = f" ({self.job_url})" if self.job_url else ""
        return f"{self.holder}{url}, held for {age:.0f}s since {iso(self.since)}"

    def to_dict(self) -> dict[str, Any]:
        return {"holder": self.holder, "job_url": self.job_url, "since": iso(self.since)}


class StateStore(Protocol):
    """Where one app's state document and deploy lock live, beside the target."""

    def read(self) -> State: ...

    def write(self, state: State) -> None: ...

    def try_lock(self, info: LockInfo) -> LockInfo | None:
        """Take the lock atomically; None when taken, else the current holder."""

    def unlock(self, info: LockInfo) -> None:
        """Release the lock if ``info`` (same token) still holds it."""

    def destroy(self, dry_run: bool) -> list[str]:
        """Remove the state, its storage and the deploy lock for good (``bgci destroy``, which
        holds the lock: its ``unlock`` then finds nothing): what was (or would be) removed."""

    def current_lock(self) -> LockInfo | None: ...
