"""The operator's day around the pipeline, through the real CLI on each platform: list the
releases, follow the live colour's output, run a one-off, roll back to an older release under a
no-retry load, lift a quarantine and switch without --force, and remove everything."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import requests
from e2e_support import Project, RequestLoop, Target, deploy_live

pytestmark = pytest.mark.e2e

# gunicorn reads more options from GUNICORN_CMD_ARGS: an access log on stdout, one line per
# request, so that `bgci logs -f` has something the app prints after it started
ACCESS_LOG = {"platform.env": {"GUNICORN_CMD_ARGS": "--access-logfile -"}}
ONE_OFF = ("import os, sys; print('one-off of', os.environ['BGCI_COLOR'], "
           "open('VERSION').read().strip()); sys.exit(7)")


def follow_until(p: Project, marker: str, request: Callable[[], None],
                 timeout: float = 60.0) -> str:
    """``bgci logs -f``; once it runs, ``request()``; the output until ``marker`` shows up."""
    proc = p.start("logs", "-f", new_session=True)
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(2.0)  # the command runs: what comes now was printed after it started
        request()
        assert found.wait(timeout), f"`bgci logs -f` never showed {marker!r}:\n{''.join(seen)}"
    finally:
        proc.send_signal(signal.SIGINT)  # what a person's Ctrl-C sends
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        reader.join(5)
    assert proc.returncode == 130, f"`bgci logs -f` exited {proc.returncode}:\n{err}"
    return "".join(seen)


@pytest.mark.e2e
def test_the_operators_commands(target: Target, new_project: Callable[..., Project]) -> None:
    p = new_project(ACCESS_LOG)
    v1, v3 = target.version("v1"), target.version("v3")
    for name in ("v1", "v2", "v3"):
        deploy_live(p, name)  # v1 on blue, v2 on green, v3 on blue: live
    p.assert_serves("blue", v3)

    listed = json.loads(p.run("releases", "--json").out)["extra"]["releases"]
    assert [r["digest"] for r in listed] == [target.digest(n) for n in ("v3", "v2", "v1")]
    assert [r["serving_live"] for r in listed] == [True, False, False]
    assert listed[1]["colors"] == ["green"] and listed[2]["colors"] == []
    assert all(r["verified"] and r["available"] and r["deployed_last"] for r in listed)
    assert listed[2]["live_since"] and listed[2]["live_until"]

    marker = uuid.uuid4().hex
    out = follow_until(p, marker, lambda: requests.get(f"{p.live_url}/version?m={marker}",
                                                       timeout=10).raise_for_status())
    assert f"/version?m={marker}" in out
    assert p.run("logs", "idle", "--tail", "5").code == 0

    ran = p.run("exec", "live", "--", "python3", "-c", ONE_OFF, expect=7)
    assert f"one-off of blue {v3}" in ran.out, ran
    assert "exited 7" in ran.err

    # back to v1, which no colour runs any more: started on green, then switched to, under load
    with RequestLoop(p.live_url, threads=3, hard_cap=120.0) as loop:
        loop.wait_for(5)
        p.run("rollback", "--to", listed[2]["version"])  # v1, by the version `releases` shows
        loop.stop_after(1.0)
    lost = [r for sent in loop.records for r in sent if r.error or r.status != 200]
    total = sum(len(sent) for sent in loop.records)
    assert not lost, f"{len(lost)} of {total} requests lost during rollback --to: {lost[:3]}"
    p.assert_serves("green", v1)
    assert {r.colour for sent in loop.records for r in sent[-3:]} == {"green"}

    quarantined = json.loads(p.run("quarantine", "list", "--json").out)["extra"]["quarantined"]
    assert [q["digest"] for q in quarantined] == [target.digest("v3")]
    assert "rolled back to" in quarantined[0]["reason"]
    refused = p.run("deploy-green", "--image", target.release("v3"), expect=4)
    assert "quarantined" in refused.err
    p.run("quarantine", "clear", target.digest("v3")[7:19], "--reason", "fixed upstream")
    p.run("deploy-green", "--image", target.release("v3"))
    p.run("verify")
    p.run("switch")  # no --force: the quarantine is lifted
    p.assert_serves("blue", v3)

    listing = p.run("destroy", expect=4)
    assert "--yes" in listing.err and "nothing was removed" in listing.err
    p.assert_serves("blue", v3)
    p.run("destroy", "--yes")
    assert target.snapshot(p.app) == [], "destroy leaves nothing of the app on the target"
    with pytest.raises(requests.ConnectionError):
        requests.get(p.live_url, timeout=5)
    assert "nothing deployed yet" in p.run("status").out
    assert target.snapshot(p.app) == [], "a look afterwards makes nothing again"
