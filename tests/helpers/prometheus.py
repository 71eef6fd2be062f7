"""A real Prometheus server (Debian's ``prometheus`` package) for the analysis tests: started as a
process on 127.0.0.1 scraping the targets it is given every second, stopped by its pid."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.helpers.ports import fresh_port

BINARY = "prometheus"


@contextlib.contextmanager
def prometheus(workdir: Path, targets: list[str], metrics_path: str = "/metrics") -> Iterator[str]:
    """Prometheus scraping ``targets`` (``host:port``) each second; yields its URL once a first
    scrape of every target is in. Stopped (SIGTERM, then SIGKILL) when the block ends."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError("prometheus is not installed: run `bash scripts/test-env.sh` as root "
                           "(it installs Debian's prometheus package)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    listed = ", ".join(f'"{t}"' for t in targets)
    config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      "scrape_configs:\n  - job_name: bgci-test\n"
                      f"    metrics_path: {metrics_path}\n"
                      f"    static_configs:\n      - targets: [{listed}]\n", encoding="utf-8")
    port = fresh_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, f"--config.file={config}",
                                 f"--storage.tsdb.path={workdir / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        _wait_scraped(url, len(targets), proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_scraped(url: str, count: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            answer = requests.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=2).json()
            if sum(1 for r in answer["data"]["result"] if r["value"][1] == "1") >= count:
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"prometheus did not scrape its targets within 30s: "
                               f"{log.read_text()[-2000:]}")
        time.sleep(0.3)
