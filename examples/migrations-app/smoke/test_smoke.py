"""Smoke suite for notes-demo. ``bgci verify`` runs it against the new release (preview); with
``verify.against_blue = true`` ``bgci switch`` runs it again after the pre_switch migration,
against the live release and the new one. So it checks what every release must keep doing, on
any schema from the one before its migration to the one after: no test names a new column.

It runs against the production database (both colours share it): the notes test writes one note,
marked ``smoke <uuid>``, and deletes it again.

By hand: ``BGCI_TARGET_URL=http://127.0.0.1:8081 pytest smoke``
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

TIMEOUT = 5.0


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
        yield session


@pytest.fixture(scope="session")
def schema(http: requests.Session, base_url: str) -> dict[str, Any]:
    response = http.get(f"{base_url}/schema", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_healthz_is_ok(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/healthz", timeout=TIMEOUT)
    assert response.status_code == 200 and response.text.strip() == "ok"


def test_version_reports_a_version(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/version", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["version"] not in ("", "unknown")


def test_notes_round_trip(http: requests.Session, base_url: str, schema: dict[str, Any]) -> None:
    if schema["state"] == "behind":
        # `bgci verify` runs before the pre_switch migration: this release's tables may not exist
        pytest.skip(f"the database is at {schema['database']}, this release needs "
                    f"{schema['code']}: `bgci switch` runs this after the migration")
    # The database is production's, shared by both colours: the note is marked as the smoke
    # suite's and deleted again (a run that fails half-way may leave one "smoke ..." note).
    note = f"smoke {uuid.uuid4().hex}"
    created = http.post(f"{base_url}/notes", json={"text": note}, timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    assert created.json()["text"] == note
    try:
        listed = http.get(f"{base_url}/notes", timeout=TIMEOUT)
        assert listed.status_code == 200, listed.text
        assert note in [item["text"] for item in listed.json()]
    finally:
        deleted = http.delete(f"{base_url}/notes/{created.json()['id']}", timeout=TIMEOUT)
    assert deleted.status_code == 204, deleted.text
    left = http.get(f"{base_url}/notes", timeout=TIMEOUT).json()
    assert note not in [item["text"] for item in left], "the smoke note was not deleted"
