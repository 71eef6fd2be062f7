"""The benchmark's load: paced keep-alive clients, GET and POST, no retries, loopback only.

    python bench/load.py http://127.0.0.1:8080 --connections 8 --rate 25 --seconds 600 \
        --stop-file /tmp/stop --out /tmp/load.json

Each of ``--connections`` threads keeps one HTTP/1.1 connection open (a new one only after the
server closed it or a request failed) and sends ``--rate`` requests a second on a fixed schedule:
two ``GET /version`` (JSON: version and colour) for each ``POST /echo`` (a JSON body that must come
back unchanged). A request that fails in any way (refused, reset, closed, timed out, HTTP status
other than 200, wrong body, or a colour header that contradicts the body) is lost: nothing is
retried. Like the connection pool of urllib3 (requests) or a browser, a client does not send on a
connection the server closed while it was idle (it opens a new one: no request was sent, so this is
not a retry); a server that closes a connection just as a request is sent on it loses that
request. The fixed schedule keeps the counts comparable: a client that cannot connect does not
spin, so ``lost / rate`` is about the seconds of unavailability.

The loop stops after ``--seconds`` or once ``--stop-file`` exists, then writes every request as
``[start, end, kind, status, colour, error]`` (epoch seconds; kind ``G`` or ``P``; colour from the
``X-Bgci-Color`` header, else from the ``/version`` body) to ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import select
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HEADER = "X-Bgci-Color"
TIMEOUT = 5.0
MAX_SECONDS = 3600.0
Record = list[Any]  # [start, end, kind, status, colour, error]


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed this idle connection (urllib3's ``is_connection_dropped``)."""
    if conn.sock is None:
        return False
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle connection is readable only at EOF (or with garbage)


def one_request(conn: http.client.HTTPConnection, kind: str, n: int, i: int) -> tuple[int, str, str, bool]:
    """Send one request on ``conn``: (status, colour, error, keep the connection)."""
    if kind == "G":
        conn.request("GET", "/version")
        payload = None
    else:
        payload = {"client": n, "i": i, "id": uuid.uuid4().hex}
        conn.request("POST", "/echo", body=json.dumps(payload),
                     headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    colour = response.getheader(HEADER) or ""
    error = ""
    if response.status != 200:
        error = f"HTTP {response.status}"
    else:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if kind == "G":
            said = data.get("color") if isinstance(data, dict) else None
            if not said:
                error = f"unexpected body {body[:80]!r}"
            elif colour and said != colour:
                error = f"header says {colour}, body says {said}"
            colour = colour or str(said or "")
        elif data != payload:
            error = f"echo returned {body[:80]!r}"
    return response.status, colour, error, not response.will_close


def worker(n: int, of: int, host: str, port: int, rate: float, until: float, stop: threading.Event,
           out: list[Record]) -> None:
    conn: http.client.HTTPConnection | None = None
    interval = 1.0 / rate
    next_at = time.time() + interval * n / of  # spread the clients over one interval
    i = 0
    while not stop.is_set():
        delay = next_at - time.time()
        if delay > 0:
            time.sleep(delay)
        if stop.is_set() or time.time() >= until:
            break
        next_at = max(next_at + interval, time.time() - interval)  # never burst to catch up
        kind = "P" if i % 3 == 2 else "G"
        if conn is not None and dropped(conn):
            conn.close()
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        started = time.time()
        try:
            status, colour, error, keep = one_request(conn, kind, n, i)
        except (OSError, http.client.HTTPException) as exc:
            status, colour, error, keep = 0, "", f"{type(exc).__name__}: {exc}"[:160], False
        out.append([round(started, 6), round(time.time(), 6), kind, status, colour, error])
        if not keep:
            conn.close()
            conn = None  # the next request opens a new connection; this one is not retried
        i += 1
    if conn is not None:
        conn.close()


def run(url: str, connections: int, rate: float, seconds: float,
        stop_file: Path | None = None) -> list[Record]:
    """Run the load until ``seconds`` pass or ``stop_file`` exists; every request's record."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if parts.scheme != "http" or not loopback(host):
        raise ValueError(f"{url}: only http:// URLs on this machine are allowed")
    until = time.time() + min(seconds, MAX_SECONDS)
    stop = threading.Event()
    outs: list[list[Record]] = [[] for _ in range(connections)]
    threads = [threading.Thread(target=worker, daemon=True,
                                args=(n, connections, host, port, rate, until, stop, outs[n]))
               for n in range(connections)]
    for thread in threads:
        thread.start()
    while time.time() < until and not (stop_file and stop_file.exists()):
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=TIMEOUT + 5)
    return sorted((r for out in outs for r in out), key=lambda r: r[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second per connection")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help=f"upper bound (at most {MAX_SECONDS:.0f})")
    parser.add_argument("--stop-file", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        records = run(args.url, max(1, args.connections), args.rate, args.seconds, args.stop_file)
    except ValueError as exc:
        parser.error(str(exc))
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps({"url": args.url, "connections": args.connections, "rate": args.rate,
                               "records": records}, separators=(",", ":")), encoding="utf-8")
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
