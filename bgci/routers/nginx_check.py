"""nginx beside bgci: ``nginx -t`` of a candidate site in a scratch prefix (a dry run's check,
which the running nginx never sees), and the old workers of a reload still finishing requests."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from bgci.ports import RouterHost, RouterSpec
from bgci.routers.nginx_conf import render_main

# old workers of a reload: busybox and procps-less images have grep; "dow[n]" keeps grep's own
# command line (which holds the pattern) from matching
OLD_WORKERS = 'grep -l "worker process is shutting dow[n]" /proc/[0-9]*/cmdline 2>/dev/null | wc -l'


def check_beside(host: RouterHost, spec: RouterSpec, binary: str, site: str, drain: float) -> str:
    """``nginx -t`` of ``site`` beside the router (in its container): its output."""
    scratch = f"/tmp/bgci-nginx-dry-run-{os.urandom(4).hex()}"
    main = render_main(scratch, f"{scratch}/bgci.conf", drain)
    host.write(spec, {f"{scratch}/nginx.conf": main.encode(), f"{scratch}/bgci.conf": site.encode()})
    try:
        _, out = host.execute(spec, [binary, "-t", "-p", f"{scratch}/", "-c",
                                     f"{scratch}/nginx.conf", "-e", "stderr"])
    finally:
        host.execute(spec, ["rm", "-rf", scratch])
    return out


def check_here(binary: str, site: str, drain: float, *, managed: bool) -> str:
    """``nginx -t`` of ``site`` on this machine, in bgci's main config (``managed``) or in a
    minimal one like a user's ``http {}``: its output."""
    with tempfile.TemporaryDirectory(prefix="bgci-nginx-dry-run-") as scratch:
        Path(scratch, "bgci.conf").write_text(site, encoding="utf-8")
        main = (render_main(scratch, f"{scratch}/bgci.conf", drain) if managed else
                f"pid {scratch}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                f"http {{\n    include {scratch}/bgci.conf;\n}}\n")
        Path(scratch, "nginx.conf").write_text(main, encoding="utf-8")
        try:
            proc = subprocess.run([binary, "-t", "-p", f"{scratch}/", "-c", f"{scratch}/nginx.conf",
                                   "-e", "stderr"], capture_output=True, text=True, timeout=30,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"(not run: {exc})"
        return (proc.stdout + proc.stderr).strip()


def old_workers(master: int | None) -> int:
    """nginx workers on this machine that are shutting down (children of ``master`` if given)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"worker process is shutting down" not in title:
                continue
            if master is not None:
                stat = (entry / "stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) != master:
                    continue
        except (OSError, ValueError, IndexError):
            continue
        count += 1
    return count
