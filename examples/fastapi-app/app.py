"""fastapi-demo: a FastAPI app on uvicorn that bgci's docs and end-to-end tests deploy blue-green.

Routes: ``/`` (hello with the version), ``/healthz`` (the health check bgci probes), ``/version``
(JSON: version and colour) and ``POST /echo`` (returns the JSON it was sent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """The release's version: the first line of the ``VERSION`` file next to this module."""
    try:
        return (HERE / "VERSION").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


VERSION = read_version()

app = FastAPI(title="fastapi-demo", version=VERSION)


@app.get("/", response_class=PlainTextResponse)
def index() -> str:
    return f"Hello from fastapi-demo {VERSION}\n"


@app.get("/healthz", response_class=PlainTextResponse)
def healthz() -> str:
    return "ok\n"


@app.get("/version")
def version() -> dict[str, str | None]:
    return {"version": VERSION, "color": os.environ.get("BGCI_COLOR") or None}


@app.post("/echo")
async def echo(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError
        return JSONResponse({"error": "expected a JSON body"}, status_code=400)


if __name__ == "__main__":  # local development only: bgci runs uvicorn itself
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
