"""flask-demo: the small web app that bgci's docs and end-to-end tests deploy blue-green.

Routes: ``/`` (hello with the version), ``/healthz`` (the health check bgci probes), ``/version``
(JSON: version and colour) and ``POST /echo`` (returns the JSON it was sent).

A release can be made unhealthy on purpose, so tests can watch bgci refuse it: ``/healthz`` answers
503 while a file named ``UNHEALTHY`` exists next to this file or while ``FAIL_HEALTH=1``. Two more
faults, for watching the bake judge what real users see while health and smoke stay green: with a
file ``FAIL_POSTS`` every fourth ``POST /echo`` of each worker answers 500, and with a file
``LOG_TRACEBACKS`` every request logs a traceback (and is answered as usual).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from flask import Flask, Response, jsonify, request

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """The release's version: the first line of the ``VERSION`` file next to this module."""
    try:
        return (HERE / "VERSION").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


VERSION = read_version()

app = Flask(__name__)
_posts = itertools.count(1)


@app.before_request
def log_a_traceback() -> None:
    if (HERE / "LOG_TRACEBACKS").exists():
        try:
            raise RuntimeError("a fault made on purpose (LOG_TRACEBACKS)")
        except RuntimeError:
            app.logger.exception("request %s failed inside", request.path)


def text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@app.get("/")
def index() -> Response:
    return text(f"Hello from flask-demo {VERSION}\n")


@app.get("/healthz")
def healthz() -> Response:
    # Checked on every request, so a running release can be turned unhealthy (and back).
    if os.environ.get("FAIL_HEALTH") == "1" or (HERE / "UNHEALTHY").exists():
        return text("unhealthy\n", status=503)
    return text("ok\n")


@app.get("/version")
def version() -> Response:
    return jsonify(version=VERSION, color=os.environ.get("BGCI_COLOR") or None)


@app.post("/echo")
def echo() -> tuple[Response, int]:
    if (HERE / "FAIL_POSTS").exists() and next(_posts) % 4 == 0:
        return jsonify(error="a fault made on purpose (FAIL_POSTS)"), 500
    payload = request.get_json(silent=True)
    if payload is None:
        return jsonify(error="expected a JSON body with Content-Type: application/json"), 400
    return jsonify(payload), 200


if __name__ == "__main__":  # local development only; containers run gunicorn
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
