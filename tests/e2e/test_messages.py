"""What a tired on-call engineer reads: the real CLI, on the docker and process platforms, failing
the way new users make it fail, and saying why, fast, pointing at the key to fix.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_support import TRACEBACK, SharedApp, grouped, shared_app

pytestmark = pytest.mark.e2e

FAST_FAIL = 10.0  # seconds a failure that waiting cannot cure may take to be reported
CRASH = "raise RuntimeError('the database URL is not set: boom at import')"
ESCAPE = re.compile(r"\x1b\[")


@pytest.fixture(scope="module", params=grouped("messages", ("docker", "process")))
def app(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    with shared_app(request, tmp_path_factory, {"verify.smoke": ""}) as shared:
        yield shared


def crashing_release(app: SharedApp) -> str:
    """A release of v1 whose app raises at import: its process exits at once, every time."""
    target = app.target
    if target.kind == "docker":
        client: Any = target.client  # type: ignore[attr-defined]
        ref = f"bgci-e2e-faults/{app.p.app}:crash"
        dockerfile = (f"FROM {target.release('v1')}\nUSER root\n"
                      f"RUN echo \"{CRASH}\" >> /app/app.py\nUSER app\n")
        app.images.append(ref)
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True)
        return ref
    where = Path(app.fresh("v1"))  # its own copy of the sources (the venv is shared)
    source = where / "app" / "app.py"
    source.write_text(source.read_text(encoding="utf-8") + f"\n{CRASH}\n", encoding="utf-8")
    return str(where)


@pytest.mark.e2e
def test_a_wrong_health_path_fails_fast_naming_health_path(app: SharedApp) -> None:
    p = app.p
    run = p.run("--set", "health.path=/health", "deploy-green", "--image", app.fresh("v1"),
                expect=1)
    assert run.seconds < FAST_FAIL + 5, run
    assert "health.path" in run.err and "404" in run.err, run
    assert TRACEBACK not in run.text
    # the report keeps the answers, not a copy of the 404 page per probe
    case = next(c for c in p.junit("deploy-green").iter("testcase")
                if c.get("name", "").startswith("health"))
    problem = case.find("failure")
    assert problem is not None and len(problem.text or "") < 2000, problem.text if problem else case


@pytest.mark.e2e
def test_an_app_that_crashes_at_start_fails_fast_with_its_traceback(app: SharedApp) -> None:
    p = app.p
    run = p.run("deploy-green", "--image", crashing_release(app), expect=1)
    assert run.seconds < FAST_FAIL + 10, run
    assert "boom at import" in run.err, run  # the last line of the app's own traceback
    assert "exited" in run.err, run
    assert TRACEBACK not in run.out


@pytest.mark.e2e
@pytest.mark.platforms("process")  # the same output on every platform: process proves it
def test_a_long_wait_says_what_it_waits_for_every_few_seconds(app: SharedApp) -> None:
    p = app.p
    run = p.run("--set", "health.deadline=40", "deploy-green", "--image",
                p.target.release("unhealthy"), expect=1)
    stamps = [float(m.group(1)) for m in re.finditer(
        r"bgci \[\s*([0-9.]+)s\] still waiting for health \w+ at \S+ \(\d+s\): HTTP 503",
        run.err)]
    assert stamps, run
    assert stamps[0] <= 10 and all(b - a <= 10 for a, b in itertools.pairwise(stamps)), stamps
    assert stamps[-1] >= 30, stamps


@pytest.mark.e2e
def test_status_json_after_the_command_and_no_colour_with_no_color(app: SharedApp) -> None:
    p = app.p
    run = p.run("status", "--json", expect=None, env={"NO_COLOR": "1"})
    data = json.loads(run.out)
    assert data["stage"] == "status" and "status" in data["extra"]
    assert not ESCAPE.search(run.text)
    failed = p.run("--set", "health.path=/health", "deploy-green", "--image", app.fresh("v1"),
                   expect=1, env={"NO_COLOR": "1"})
    assert not ESCAPE.search(failed.text), failed


@pytest.mark.e2e
@pytest.mark.platforms("process")  # the same output on every platform: process proves it
def test_a_failed_stage_raises_a_github_error_annotation(app: SharedApp) -> None:
    p = app.p
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "shop/app", "GITHUB_RUN_ID": "1"}
    run = p.run("--set", "health.path=/health", "deploy-green", "--image", app.fresh("v1"),
                expect=1, env=env)
    assert re.search(r"^::error [^\n]*title=bgci::bgci deploy-green failed \(exit 1\): ",
                     run.err, re.MULTILINE), run
    bad = p.run("--set", "health.timeout=-1", "status", expect=2, env=env)
    assert "::error title=bgci::" in bad.err and "--set health.timeout" in bad.err, bad


SECRETS = {"APP_DB_PASSWORD": "pw-3c0ffee-db", "STRIPE_KEY": "sk_live_5ecret42"}
HOOK_SECRET = "tok-9f8e7d6c5b"


@pytest.mark.e2e
def test_no_secret_from_the_config_reaches_a_report_or_the_output(app: SharedApp) -> None:
    p = app.p
    hook = f"DEPLOY_TOKEN={HOOK_SECRET} sh -c 'exit 3' --password {HOOK_SECRET}x"
    runs = [
        p.run("--set", "platform.env.APP_DB_PASSWORD=" + SECRETS["APP_DB_PASSWORD"],
              "--set", "platform.env.STRIPE_KEY=" + SECRETS["STRIPE_KEY"],
              "--set", f"hooks.post_deploy.command={hook}",
              "-v", "deploy-green", "--image", app.fresh("v1"), expect=1),
        p.run("--json", "status", expect=None),
    ]
    seen = "".join(run.text for run in runs) + "".join(
        f.read_text(encoding="utf-8", errors="replace") for f in p.reports.iterdir() if f.is_file())
    for value in (*SECRETS.values(), HOOK_SECRET, HOOK_SECRET + "x"):
        assert value not in seen, f"{value!r} leaked"
    assert "hook post_deploy" in runs[0].err and "exited 3" in runs[0].err, runs[0]
