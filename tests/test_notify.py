"""The webhook: one payload per outcome, retried, and never a reason to fail a deployment."""

from __future__ import annotations

import json

import pytest

from bgci import notify as notify_module
from bgci.log import StderrLog
from bgci.model import StageResult
from bgci.notify import notify
from tests.helpers.httpserver import Script, serve


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3's retries, without their waits."""
    monkeypatch.setattr(notify_module, "BACKOFF", 0.0)


def result() -> StageResult:
    r = StageResult(stage="switch", app="shop", live_colour="green", idle_colour="blue",
                    image="shop:abc", digest="sha256:1")
    r.status, r.exit_code = "failed", 1
    return r


def test_payload_reaches_the_receiver() -> None:
    script = Script(status=204, body="")
    with serve(script) as url:
        assert notify(url + "/hook", result(), "https://ci/job/1", StderrLog(-1))
    body = json.loads(script.posts[0])
    assert body["app"] == "shop" and body["stage"] == "switch" and body["outcome"] == "failed"
    assert body["live_color"] == "green" and body["digest"] == "sha256:1"
    assert body["ci_job_url"] == "https://ci/job/1"


def test_server_errors_are_retried_then_given_up_quietly() -> None:
    script = Script(status=502, body="bad gateway")
    with serve(script) as url:
        assert not notify(url, result(), "", StderrLog(-1))
    assert len(script.posts) == 3


def test_receiver_down_never_raises() -> None:
    assert not notify("http://127.0.0.1:9/hook", result(), "", StderrLog(-1))


def test_no_url_sends_nothing() -> None:
    assert not notify("", result(), "", StderrLog(-1))
