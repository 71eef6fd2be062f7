"""Running a command on this machine and taking its exit code and output, for the adapters that
drive a local program (a router's test or reload command, a tool beside it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

RUN_TIMEOUT = 60.0


def run_argv(argv: list[str], *, cwd: str | Path | None = None,
             timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    """``argv`` as it is, no shell: exit code and output, stdout then stderr (127 when it cannot
    run or runs past ``timeout``)."""
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()
