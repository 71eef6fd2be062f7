"""A live request loop for the quickstart: keep-alive clients that never retry, bounded in time.

    python examples/load.py http://127.0.0.1:8080/ --seconds 60 --stop-file /tmp/stop --out load.json

Each of ``--connections`` threads keeps one HTTP/1.1 connection open and sends GET after GET, the
way a browser or an API client with a connection pool does. A request that fails in any way (reset,
refused, timeout, an HTTP status >= 500) counts as lost: nothing is retried, so every request a
switch drops shows up. The loop stops after ``--seconds`` or as soon as ``--stop-file`` exists,
then writes a JSON summary (sent, lost, answers per colour, the colours each connection saw in
turn, when the first one saw them change) to ``--out``.
Only addresses on this machine are meant: it refuses any host but a loopback one.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HEADER = "X-Bgci-Color"


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.lost = 0
        self.by_colour: dict[str, int] = {}
        self.errors: list[str] = []
        # per connection: when the colour answering it changed. Across connections the order can
        # interleave (a request already in flight at a switch still ends on the old colour).
        self.changes: dict[int, list[dict[str, Any]]] = {}

    def record(self, worker: int, started: float, colour: str, error: str) -> None:
        with self.lock:
            self.sent += 1
            if error:
                self.lost += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{time.monotonic() - started:7.2f}s {error}")
                return
            self.by_colour[colour] = self.by_colour.get(colour, 0) + 1
            changes = self.changes.setdefault(worker, [])
            if not changes or changes[-1]["to"] != colour:
                changes.append({"at": round(time.monotonic() - started, 3), "to": colour})


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def worker(number: int, host: str, port: int, path: str, tally: Tally, started: float,
           until: float, stop_file: Path | None) -> None:
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < until and not (stop_file and stop_file.exists()):
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            colour = response.getheader(HEADER) or "(none)"
            error = f"HTTP {response.status} from {colour}" if response.status >= 500 else ""
            if response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            colour, error = "", f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = None  # the next request opens a new connection; this one is not retried
        tally.record(number, started, colour, error)
        time.sleep(0.005)
    if conn is not None:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after (at most 600)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--stop-file", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if parts.scheme != "http" or not loopback(host):
        parser.error("only http:// URLs on this machine (127.0.0.1, localhost, ::1) are allowed")
    tally = Tally()
    started = time.monotonic()
    until = started + min(args.seconds, 600.0)
    threads = [threading.Thread(target=worker, daemon=True,
                                args=(n, host, port, parts.path or "/", tally, started, until,
                                      args.stop_file))
               for n in range(max(1, args.connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    summary = {"url": args.url, "seconds": round(seconds, 2), "connections": len(threads),
               "sent": tally.sent, "lost": tally.lost, "by_colour": tally.by_colour,
               "requests_per_second": round(tally.sent / seconds, 1) if seconds else 0.0,
               "colour_changes": tally.changes.get(0, []),  # as the first connection saw them
               "colours_per_connection": [[c["to"] for c in tally.changes[n]]
                                          for n in sorted(tally.changes)],
               "errors": tally.errors}
    text = json.dumps(summary, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
