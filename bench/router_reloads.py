"""What a switch costs clients, per router and configuration: requests lost per switch by
clients that do not retry and by one that retries, under a steady keep-alive load (loopback only).

    python bench/router_reloads.py                      # every row, 30 switches each
    python bench/router_reloads.py --switches 10 --rows nginx,nginx-no-keepalive

Each row is a router bgci manages as a local process (the process platform's router host) in
front of two tiny backends (tests/helpers/routers.py), or one configuration of it. Three loads run
at once for the whole row, ``--connections`` keep-alive connections each, GET after GET: a
``naive`` client sends on its open connection without looking (http.client); a ``pooled`` one
first checks that the server has not closed it, as urllib3/requests do (not a retry: nothing was
sent); a ``retrying`` one also sends a failed GET once more on a new connection, as browsers and
most client libraries do for idempotent requests on a reused connection. The row then switches
live traffic ``--switches`` times, blue <-> green, ``--gap`` seconds apart.

``nginx-reload`` is not how bgci switches nginx: it measures what a graceful reload (which bgci
does when a colour's address changes, at a deploy) costs the live colour's clients: the same
site, reloaded with the flag flipped. Prints a Markdown table and writes the numbers as JSON
(``--out``). No assertion on any number: this measures, tests/routers asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/router_reloads.py` from anywhere

from bgci.config import load_config  # noqa: E402
from bgci.log import StderrLog  # noqa: E402
from bgci.model import COLOURS, Colour  # noqa: E402
from bgci.ports import Router  # noqa: E402
from bgci.registry import make_router, open_site  # noqa: E402
from bgci.routers.nginx import NginxRouter  # noqa: E402
from tests.helpers.ports import fresh_port  # noqa: E402
from tests.helpers.routers import CLIENTS, Load, backends, bgci_toml  # noqa: E402

QUIET = StderrLog(verbosity=-1)  # bgci's own lines would interleave with the benchmark's


@dataclass(frozen=True)
class Row:
    key: str
    kind: str
    what: str
    extra: dict[str, Any] | None = None


ROWS = (
    Row("haproxy", "haproxy", "runtime API (set map), no reload"),
    Row("traefik", "traefik", "file provider, handlers swapped in-process"),
    Row("nginx", "nginx", "flag file checked per request (if -f), no reload"),
    Row("nginx-reload", "nginx", "the same site, each flip followed by nginx -s reload"),
    Row("nginx-reload-no-keepalive", "nginx", "the same, router.client_keepalive = false",
        {"client_keepalive": False}),
    Row("caddy", "caddy", "colour file read per request ({file.*}), no reload"),
)


Target = tuple[str, Callable[[str], None]]  # live URL, switch(colour)


@contextlib.contextmanager
def bgci_router(row: Row, work: Path, addresses: dict[Colour, str]) -> Iterator[Target]:
    """A router bgci manages: (live URL, switch function)."""
    with started(row, work, addresses) as router:
        yield router.live_url, router.switch  # type: ignore[misc]


@contextlib.contextmanager
def started(row: Row, work: Path, addresses: dict[Colour, str]) -> Iterator[Router]:
    config_file = work / "bgci.toml"
    config_file.write_text(bgci_toml(row.kind, work / "state", listen=f"127.0.0.1:{fresh_port()}",
                                     preview=f"127.0.0.1:{fresh_port()}", extra=row.extra))
    config = load_config(str(config_file), cwd=work, environ={})
    router = make_router(config, open_site(config))
    try:
        router.ensure(addresses, None, QUIET)
        router.switch("blue")
        yield router
    finally:
        router.stop(QUIET)


@contextlib.contextmanager
def reloading_nginx(row: Row, work: Path, addresses: dict[Colour, str]) -> Iterator[Target]:
    """bgci's nginx, every switch followed by a graceful reload (what a deploy's new address
    costs the live colour's clients): the flag flipped, then ``nginx -s reload``."""
    with started(row, work, addresses) as router:
        assert isinstance(router, NginxRouter)

        def switch_and_reload(colour: str) -> None:
            router.switch(colour)  # type: ignore[arg-type]
            subprocess.run(router.reload_argv, check=True, capture_output=True, timeout=30)

        yield router.live_url, switch_and_reload


def measure(row: Row, switches: int, connections: int, gap: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bgci-bench-{row.key}-") as tmp, backends() as colours:
        work = Path(tmp)
        addresses = {c: colours[c].address for c in COLOURS}
        if row.key.startswith("nginx-reload"):
            target = reloading_nginx(row, work, addresses)
        else:
            target = bgci_router(row, work, addresses)
        with target as (url, switch):
            loads = {client: Load(url, connections, client=client, hard_cap=switches * gap + 120)
                     for client in CLIENTS}
            with contextlib.ExitStack() as stack:
                for load in loads.values():
                    stack.enter_context(load)
                    load.wait_for(100)
                took = []
                for i in range(switches):
                    started = time.monotonic()
                    switch("green" if i % 2 == 0 else "blue")
                    took.append(time.monotonic() - started)
                    time.sleep(gap)
                tallies = {client: load.stop() for client, load in loads.items()}
    result: dict[str, Any] = {"row": row.key, "router": row.kind, "what": row.what,
                              "switches": switches, "connections": connections,
                              "switch_seconds_median": round(sorted(took)[len(took) // 2], 4)}
    for name, tally in tallies.items():
        result[name] = {"sent": tally.sent, "lost": tally.lost, "retried": tally.retried,
                        "lost_per_switch": round(tally.lost / switches, 3),
                        "colours": tally.by_colour, "errors": tally.errors[:5]}
    return result


def table(results: list[dict[str, Any]]) -> str:
    """lost / sent per client, and lost per switch in brackets."""
    lines = ["| row | mechanism | switch (median) | naive client | pooled client | retrying client |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = [f"{r[c]['lost']} / {r[c]['sent']} ({r[c]['lost_per_switch']})" for c in CLIENTS]
        lines.append(f"| {r['row']} | {r['what']} | {r['switch_seconds_median'] * 1000:.0f} ms | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switches", type=int, default=30)
    parser.add_argument("--connections", type=int, default=3,
                        help="per client (the three clients run at once)")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two switches")
    parser.add_argument("--rows", default=",".join(r.key for r in ROWS))
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "router-reloads.json")
    args = parser.parse_args(argv)
    wanted = [r for r in ROWS if r.key in args.rows.split(",")]
    results = []
    for row in wanted:
        print(f"router-reloads: {row.key} ({args.switches} switches)", file=sys.stderr, flush=True)
        results.append(measure(row, args.switches, args.connections, args.gap))
    text = table(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "results": results, "table": text}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
