"""The optional webhook: one JSON payload per stage outcome; it never fails a deployment.

Retries are urllib3's (through requests): a 5xx answer or a connection that fails is tried again
up to ``TRIES`` times in all, ``BACKOFF`` seconds apart and doubling; a 4xx is final.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bgci.log import Log
from bgci.model import StageResult

TRIES = 3
BACKOFF = 0.5  # seconds before the second retry (urllib3 sends the first at once), then doubled
TIMEOUT = 5.0
RETRIED = (500, 502, 503, 504)


def payload(result: StageResult, job_url: str) -> dict[str, Any]:
    return {
        "app": result.app, "stage": result.stage, "outcome": result.status,
        "exit_code": result.exit_code, "message": result.message,
        **result.facts(), "ci_job_url": job_url,
    }


def _session() -> requests.Session:
    retry = Retry(total=TRIES - 1, backoff_factor=BACKOFF, status_forcelist=RETRIED,
                  allowed_methods=frozenset({"POST"}), raise_on_status=False,
                  respect_retry_after_header=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def notify(url: str, result: StageResult, job_url: str, log: Log) -> bool:
    """POST the outcome to ``url``, retrying; logs (never raises) when the receiver is down."""
    if not url:
        return False
    try:
        with _session() as session:
            response = session.post(url, json=payload(result, job_url), timeout=TIMEOUT)
    except requests.RequestException as exc:
        log.info(f"notify: webhook unreachable after {TRIES} tries ({type(exc).__name__}); "
                 "deployment unaffected")
        return False
    if response.status_code >= 500:
        log.info(f"notify: webhook answered HTTP {response.status_code} after {TRIES} tries; "
                 "deployment unaffected")
    elif response.status_code >= 400:
        log.info(f"notify: webhook answered HTTP {response.status_code}; not retried")
    return response.status_code < 400
