"""The exception a crashed app died of, found in what it printed."""

from __future__ import annotations

from bgci.crash import describe, exceptions

GUNICORN = """\
[2026-11-30 06:00:00 +0000] [12] [INFO] Booting worker with pid: 12
[2026-11-30 06:00:00 +0000] [12] [ERROR] Exception in worker process
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/gunicorn/arbiter.py", line 609, in spawn_worker
    worker.init_process()
  File "/app/app.py", line 80, in <module>
    raise RuntimeError('the database URL is not set')
RuntimeError: the database URL is not set
[2026-11-30 06:00:00 +0000] [12] [INFO] Worker exiting (pid: 12)
Traceback (most recent call last):
  File "/venv/bin/gunicorn", line 8, in <module>
    sys.exit(run())
gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>
"""


def test_the_apps_exception_comes_first_and_each_once() -> None:
    assert exceptions(GUNICORN + GUNICORN) == [
        "RuntimeError: the database URL is not set",
        "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>"]


def test_a_crash_is_described_with_its_exception_and_last_lines() -> None:
    text = describe("blue's process exited with code 3", GUNICORN, lines=2)
    assert text.startswith("blue's process exited with code 3: RuntimeError: the database URL")
    assert text.endswith("    sys.exit(run())\ngunicorn.errors.HaltServer: <HaltServer "
                         "'Worker failed to boot.' 3>")
    assert describe("x exited", "") == "x exited; it printed nothing"
