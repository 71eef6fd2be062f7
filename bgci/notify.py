"""The optional webhook: one JSON payload per stage outcome; it never fails a deployment."""

from __future__ import annotations

import time
from typing import Any

from bgci.log import Log
from bgci.model import StageResult

TRIES = 3


def payload(result: StageResult, job_url: str) -> dict[str, Any]:
    return {
        "app": result.app, "stage": result.stage, "outcome": result.status,
        "exit_code": result.exit_code, "message": result.message,
        "live_color": result.live_colour, "idle_color": result.idle_colour,
        "color": result.colour, "image": result.image, "digest": result.digest,
        "live_url": result.live_url, "preview_url": result.preview_url, "ci_job_url": job_url,
    }


def notify(url: str, result: StageResult, job_url: str, log: Log) -> bool:
    """POST the outcome to ``url``, retrying; logs (never raises) when the receiver is down."""
    if not url:
        return False
    import requests

    body = payload(result, job_url)
    last = ""
    for attempt in range(TRIES):
        try:
            response = requests.post(url, json=body, timeout=5)
            if response.status_code < 500:
                if response.status_code >= 400:
                    log.info(f"notify: webhook answered HTTP {response.status_code}; not retried")
                return response.status_code < 400
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.5 * (attempt + 1))
    log.info(f"notify: webhook unreachable after {TRIES} tries ({last}); deployment unaffected")
    return False
