"""Smoke suite for django-demo: ``bgci verify`` runs it with BGCI_TARGET_URL set to the preview URL.

Django answers only requests for a host in ALLOWED_HOSTS, so every request here names the site's
host (``DJANGO_DEMO_HOST``, default ``django-demo.example``, as in bgci.toml's ``health.host``).
Run it by hand against any running copy::

    BGCI_TARGET_URL=http://127.0.0.1:8081 pytest smoke
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

TIMEOUT = 5.0
HOST = os.environ.get("DJANGO_DEMO_HOST", "django-demo.example")


@pytest.fixture(scope="session")
def base_url() -> str:
    url = os.environ.get("BGCI_TARGET_URL", "").rstrip("/")
    if not url:
        pytest.fail("BGCI_TARGET_URL is not set: point it at the app, e.g. http://127.0.0.1:8081",
                    pytrace=False)
    return url


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Host"] = HOST
        yield session


def test_index_says_hello(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert "Hello from django-demo" in response.text


def test_healthz_is_ok(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/healthz", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text.strip() == "ok"


def test_version_reports_a_version(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/version", timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert body["version"] not in ("", "unknown")
    assert "color" in body


def test_echo_round_trips_json(http: requests.Session, base_url: str) -> None:
    payload = {"message": "hello", "n": 3, "nested": {"ok": True, "items": [1, 2.5, None]}}
    response = http.post(f"{base_url}/echo", json=payload, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == payload


def test_a_host_not_in_allowed_hosts_is_refused(base_url: str) -> None:
    # what bgci's health probes would get without health.host
    response = requests.get(f"{base_url}/healthz", headers={"Host": "unknown.invalid"},
                            timeout=TIMEOUT)
    assert response.status_code == 400
