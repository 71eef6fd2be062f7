"""A tiny threaded HTTP server on 127.0.0.1 whose answers a test scripts (status, body, headers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    seen_hosts: list[str] = field(default_factory=list)
    posts: list[bytes] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered first, one per request, then status


@contextmanager
def serve(script: Script) -> Iterator[str]:
    """Serve ``script`` until the block ends; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            script.seen_hosts.append(self.headers.get("Host", ""))
            data = script.body.encode()
            self.send_response(script.statuses.pop(0) if script.statuses else script.status)
            for key, value in script.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.posts.append(self.rfile.read(length))
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
