"""flask-demo: the small web app that bgci's docs and end-to-end tests deploy blue-green.

Routes: ``/`` (hello with the version), ``/healthz`` (the health check bgci probes), ``/version``
(JSON: version and colour) and ``POST /echo`` (returns the JSON it was sent).

A release can be made unhealthy on purpose, so tests can watch bgci refuse it: ``/healthz`` answers
503 while a file named ``UNHEALTHY`` exists next to this file or while ``FAIL_HEALTH=1``.
"""

from __future__ import annotations

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
    payload = request.get_json(silent=True)
    if payload is None:
        return jsonify(error="expected a JSON body with Content-Type: application/json"), 400
    return jsonify(payload), 200


if __name__ == "__main__":  # local development only; containers run gunicorn
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
