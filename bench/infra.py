"""What every part of the benchmark shares: the things it started (to stop them), ports, the load.

Everything the benchmark starts is recorded here by its id (container, service, network, config,
volume, process id, bgci app) the moment it exists, and :meth:`Resources.cleanup` stops and removes
exactly those, in reverse order, whatever happened before. Nothing is ever looked up by name to
be killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLE_APP = REPO / "examples" / "flask-app"
CACHE = Path(os.environ.get("BGCI_CACHE", "/var/cache/bgci"))


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_env() -> dict[str, str]:
    """The local images and wheelhouse ``scripts/test-env.sh`` made (empty when it never ran)."""
    facts: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in (CACHE / "env").read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                facts[key.strip()] = value.strip()
    return facts


def docker_client() -> Any:
    """A docker SDK client, or None when there is no engine to talk to."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception:  # no SDK, no engine: the docker rows are skipped and say why
        return None


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(interval)
    return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    import requests

    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Resources:
    """Everything the benchmark started, by id, and how to stop it."""

    client: Any = None
    undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, stop: Callable[[], None]) -> None:
        self.undo.append((what, stop))

    def container(self, container: Any) -> Any:
        self.add(f"container {container.name} ({container.short_id})",
                 lambda: container.remove(force=True, v=True))
        return container

    def network(self, network: Any) -> Any:
        self.add(f"network {network.name}", network.remove)
        return network

    def service(self, service: Any) -> Any:
        self.add(f"service {service.name}", service.remove)
        return service

    def process(self, proc: subprocess.Popen[Any], what: str, sig: int = signal.SIGTERM) -> None:
        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        self.add(f"{what} (pid {proc.pid})", stop)

    def release(self, what: str) -> None:
        """Forget ``what`` once the benchmark itself stopped it."""
        self.undo = [(w, s) for w, s in self.undo if w != what]

    def checkpoint(self) -> int:
        """A point to :meth:`cleanup` back to (what was started after it)."""
        return len(self.undo)

    def cleanup(self, to: int = 0) -> list[str]:
        """Stop everything started after checkpoint ``to`` (default: everything), newest first."""
        while len(self.undo) > to:
            what, stop = self.undo.pop()
            try:
                stop()
            except Exception as exc:  # keep going: every other resource must still be stopped
                if "404" not in str(exc) and "No such" not in str(exc):
                    self.problems.append(f"could not stop {what}: {exc}")
        return self.problems


def ensure_swarm(res: Resources) -> None:
    """The engine as a swarm manager: `docker swarm init` on 127.0.0.1 when it is in no swarm (and
    `docker swarm leave --force` at cleanup, unless someone else has services on it by then); a
    swarm that already exists is used as it is and left as found."""
    client = res.client
    swarm = client.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState")
    if state == "active":
        if not swarm.get("ControlAvailable"):
            raise RuntimeError("the engine is a swarm worker: a manager is needed")
        return
    if state != "inactive":
        raise RuntimeError(f"the engine's swarm state is {state!r}: expected active or inactive")
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")

    def leave() -> None:
        others = [s.name for s in client.services.list()]
        if others:  # someone else uses it now: leaving would take their services down
            res.problems.append(f"left the swarm the benchmark initialised in place: in use by {others}")
            return
        client.swarm.leave(force=True)

    res.add("the swarm the benchmark initialised", leave)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so that the cleanup in ``finally`` blocks runs."""
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Load:
    """``bench/load.py`` against ``url`` as a child process, for the duration of a ``with`` block."""

    def __init__(self, url: str, work: Path, res: Resources, *, connections: int, rate: float,
                 cap: float) -> None:
        self.url, self.work, self.res = url, work, res
        self.connections, self.rate, self.cap = connections, rate, cap
        self.stop_file = work / "load.stop"
        self.out = work / "load.json"
        self.records: list[list[Any]] = []
        self.began = self.ended = 0.0

    def __enter__(self) -> Load:
        self.work.mkdir(parents=True, exist_ok=True)
        self.stop_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "load.py"), self.url, "--connections", str(self.connections),
             "--rate", str(self.rate), "--seconds", str(self.cap), "--stop-file", str(self.stop_file),
             "--out", str(self.out)], stdin=subprocess.DEVNULL)
        self.what = f"load client on {self.url}"
        self.res.process(self.proc, self.what)
        self.began = time.time()
        time.sleep(1.0)  # every connection has sent a few requests before anything changes
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1.0)  # and a few after
        self.ended = time.time()
        self.stop_file.touch()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.res.release(self.what)
        if self.out.exists():
            self.records = json.loads(self.out.read_text(encoding="utf-8"))["records"]


@dataclass
class Context:
    """One benchmark run: its settings, work dir, what it started, and the builds rows share."""

    run_id: str
    work: Path
    res: Resources
    cycles: int
    connections: int
    rate: float
    gap: float
    images: dict[str, str] = field(default_factory=dict)  # v1/v2 -> docker image ref
    releases: dict[str, str] = field(default_factory=dict)  # v1/v2 -> process release directory
    state_dir: Path = Path()
    notes: list[str] = field(default_factory=list)

    @property
    def client(self) -> Any:
        return self.res.client

    def load(self, url: str, name: str) -> Load:
        cap = 120.0 + self.cycles * 120.0  # bounded: far beyond what a healthy row needs
        return Load(url, self.work / "load" / name, self.res, connections=self.connections,
                    rate=self.rate, cap=cap)
