"""Views of django-demo: ``/`` (hello with the version), ``/healthz`` (the health check bgci
probes), ``/version`` (JSON: version and colour) and ``POST /echo`` (returns the JSON it was sent).
"""

from __future__ import annotations

import json
import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from demo.settings import BASE_DIR


def read_version() -> str:
    """The release's version: the first line of the ``VERSION`` file of the project."""
    try:
        return (BASE_DIR / "VERSION").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


VERSION = read_version()


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"Hello from django-demo {VERSION}\n", content_type="text/plain")


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


@require_GET
def version(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"version": VERSION, "color": os.environ.get("BGCI_COLOR") or None})


@require_POST
def echo(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "expected a JSON body"}, status=400)
    return JsonResponse(payload, safe=False)
