"""Fakes of the ports, for the stage-core tests: a platform, a router and an in-memory state store
that share one ``World``. They run in-process, in milliseconds, with no engine and no router
binary. The router is a real HTTP server on two loopback ports (live and preview) that answers
as the colour it routes to would, with ``X-Bgci-Color``: the stages' own health probes,
confirmations and bakes go through it unchanged.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bgci.config import load_config
from bgci.deployment import Deployment, Identity
from bgci.errors import BgciError, ConfigError, InfraError, Refused
from bgci.log import Log, StderrLog
from bgci.model import Colour, ColourSpec, Instance, Release, StageResult, other
from bgci.ports import Counters, LockInfo, Reach, Traffic
from bgci.record import State
from bgci.registry import Site
from bgci.stages.deploy_green import deploy_green
from bgci.stages.switch import switch
from bgci.stages.verify import verify


@dataclass
class FakeInstance:
    colour: Colour
    release: Release
    spec: ColourSpec
    running: bool = True
    started_at: float = field(default_factory=time.time)

    def instance(self) -> Instance:
        return Instance(colour=self.colour, release=self.release,
                        address=f"fake-{self.colour}:{self.spec.port}", running=self.running,
                        started_at=self.started_at, spec=self.spec)


@dataclass
class World:
    """Everything the fakes share: what runs, what the router does, what the store holds."""

    images: dict[str, str] = field(default_factory=dict)  # image -> digest that can be started
    unhealthy: set[str] = field(default_factory=set)  # digests whose app answers 503
    # digest -> how many requests through the live address it answers before it starts failing
    fails_after: dict[str, int] = field(default_factory=dict)
    live_answers: dict[str, int] = field(default_factory=dict)
    instances: dict[Colour, FakeInstance] = field(default_factory=dict)
    starts: list[tuple[Colour, str]] = field(default_factory=list)  # (colour, image) started
    port: int = 8000  # what platform.spec() gives a colour started now
    stops: list[Colour] = field(default_factory=list)
    router_running: bool = True
    live: Colour | None = None  # what the router sends live traffic to now
    saved_live: Colour | None = None  # what its files say (a restarted router comes back with it)
    backends: dict[Colour, str] = field(default_factory=dict)
    router_starts: int = 0
    router_changes: list[str] = field(default_factory=list)  # the router runs with other settings
    stale: float = 0.0  # a DNS router's TTL: new clients may reach the old colour this long
    state: dict[str, Any] | None = None
    lock: LockInfo | None = None
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # image -> build labels
    built: dict[str, float] = field(default_factory=dict)  # digest -> build time (default 1.0)
    removed: list[str] = field(default_factory=list)  # images removed
    output: dict[Colour, list[str]] = field(default_factory=dict)  # lines each colour wrote
    # digest -> (path, every how many requests to it fail with 500): real users' requests that
    # bgci's probes (the health path) never make
    fails_path: dict[str, tuple[str, int]] = field(default_factory=dict)
    path_answers: dict[str, int] = field(default_factory=dict)
    logs_per_request: dict[str, str] = field(default_factory=dict)  # digest -> line it logs
    counted: dict[Colour, list[int]] = field(default_factory=dict)  # [requests, 5xx] per colour
    counting: bool = True  # the router keeps counters bgci can read

    def add_image(self, image: str, *, healthy: bool = True) -> str:
        digest = f"sha256:{abs(hash(image)):016x}"
        self.images[image] = digest
        if not healthy:
            self.unhealthy.add(digest)
        return digest

    def answer(self, role: str, path: str = "/healthz") -> tuple[int, Colour | None, str]:
        """(status, colour, body) of a request for ``path`` through the ``role`` address now,
        counted for the colour it went to as a router counts it."""
        status, colour, body = self._answer(role, path)
        if colour is not None:
            counts = self.counted.setdefault(colour, [0, 0])
            counts[0] += 1
            counts[1] += status >= 500
        return status, colour, body

    def _answer(self, role: str, path: str) -> tuple[int, Colour | None, str]:
        routed = self.live if role == "live" else (other(self.live) if self.live else "blue")
        if role == "live" and self.live is None:
            return 503, None, "no colour is live here yet"
        assert routed is not None
        found = self.instances.get(routed)
        if routed not in self.backends or found is None or not found.running:
            return 503, routed, f"{routed} is not running"
        digest = found.release.digest
        if digest in self.logs_per_request:
            self.output.setdefault(routed, []).append(self.logs_per_request[digest])
        failing = self.fails_path.get(digest)
        if failing is not None and path == failing[0]:
            self.path_answers[digest] = self.path_answers.get(digest, 0) + 1
            if self.path_answers[digest] % failing[1] == 0:
                return 500, routed, f"{path} failed"
        if role == "live" and digest in self.fails_after:
            self.live_answers[digest] = self.live_answers.get(digest, 0) + 1
            if self.live_answers[digest] > self.fails_after[digest]:
                return 500, routed, "it broke under live traffic"
        if digest in self.unhealthy:
            return 503, routed, "unhealthy"
        return 200, routed, f"ok {found.release.image}"


class FakePlatform:
    name = "fake"

    def __init__(self, world: World) -> None:
        self.world = world

    def build(self, tag: str, log: Log, labels: Mapping[str, str]) -> Release:
        image = f"app:{tag}"
        self.world.labels[image] = dict(labels)
        return Release(image, self.world.add_image(image))

    def tagged(self, tag: str) -> Release | None:
        image = f"app:{tag}"
        return Release(image, self.world.images[image]) if image in self.world.images else None

    def resolve(self, image: str) -> Release:
        if image not in self.world.images:
            raise ConfigError(f"no image {image}")
        return Release(image, self.world.images[image])

    def has(self, release: Release) -> bool:
        return self.world.images.get(release.image) == release.digest

    def spec(self) -> ColourSpec:
        return ColourSpec(port=self.world.port)

    def start(self, colour: Colour, release: Release, spec: ColourSpec, log: Log) -> Instance:
        self.world.instances[colour] = FakeInstance(colour, release, spec)
        self.world.starts.append((colour, release.image))
        return self.world.instances[colour].instance()

    def instances(self) -> dict[Colour, Instance]:
        return {c: i.instance() for c, i in self.world.instances.items()}

    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        if self.world.instances.pop(colour, None) is not None:
            self.world.stops.append(colour)

    def run_once(self, release: Release, command: str, env: dict[str, str], timeout: float, *,
                 spec: ColourSpec | None = None,
                 echo: Callable[[str], None] | None = None) -> tuple[int, str]:
        output = f"ran {command} in {release.image} with {sorted((spec.env if spec else {}).items())}\n"
        if echo is not None:
            echo(output)
        return 0, output

    def logs(self, colour: Colour, lines: int = 40) -> str:
        return f"the last lines of {colour}"

    def output(self, colour: Colour, *, tail: int | None, since: float | None,
               follow: bool) -> Iterator[str]:
        yield f"output of {colour}\n"

    def built(self, release: Release) -> float | None:
        return self.world.built.get(release.digest, 1.0) if self.has(release) else None

    def releases(self) -> list[Release]:
        return [Release(image, digest) for image, digest in self.world.images.items()]

    def remove(self, release: Release) -> None:
        self.world.images.pop(release.image, None)
        self.world.removed.append(release.image)

    def destroy(self, dry_run: bool) -> list[str]:
        done = [f"colour {c}" for c in self.world.instances]
        if not dry_run:
            self.world.instances.clear()
        return done
    def output_after(self, colour: Colour, cursor: str) -> tuple[str, str]:
        lines = self.world.output.get(colour, [])
        start = int(cursor) if cursor else len(lines)
        return "".join(f"{line}\n" for line in lines[start:]), str(len(lines))

    def failure(self, colour: Colour) -> str:
        found = self.world.instances.get(colour)
        return "" if found is not None and found.running else f"{colour} exited with code 1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        world = self.server.world
        if not world.router_running:
            self.close_connection = True  # a stopped router: the client sees the connection drop
            return
        status, colour, body = world.answer(self.server.role, self.path)
        data = body.encode()
        self.send_response(status)
        if colour and status == 200:
            self.send_header("X-Bgci-Color", colour)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, world: World, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.world, self.role = world, role


class FakeRouter:
    """A router whose live and preview addresses are real HTTP servers answering from ``World``."""

    def __init__(self, world: World, live_url: str, preview_url: str) -> None:
        self.world = world
        self.live_url, self.preview_url = live_url, preview_url
        self.switches: list[Colour] = []

    def settle_for(self) -> float:
        return 0.0

    def _up(self) -> None:
        if not self.world.router_running:
            raise InfraError("the fake router is not running")

    def ensure(self, backends: Mapping[Colour, str], live: Colour | None, log: Log) -> bool:
        started = not self.world.router_running
        if started:
            self._start(live, log)
        elif self.world.router_changes:
            raise Refused(f"the fake router runs with other settings: {self.world.router_changes}",
                          "`bgci router reboot`")
        self.world.backends = dict(backends)
        return started

    def _start(self, live: Colour | None, log: Log) -> None:
        self.world.router_running = True
        self.world.router_starts += 1
        self.world.router_changes = []
        self.world.live = live or self.world.saved_live
        log.info(f"starting router fake (live: {self.world.live or 'nothing yet'})")

    def reboot(self, backends: Mapping[Colour, str], live: Colour | None, log: Log) -> None:
        self.world.router_running = False
        self._start(live, log)
        self.world.backends = dict(backends)

    def changes(self) -> list[str]:
        return list(self.world.router_changes)

    def live(self) -> Colour | None:
        self._up()
        return self.world.live

    def set_backend(self, colour: Colour, address: str | None) -> None:
        self._up()
        if address:
            self.world.backends[colour] = address
        else:
            self.world.backends.pop(colour, None)

    def switch(self, live: Colour) -> None:
        self._up()
        self.switches.append(live)
        self.world.live = self.world.saved_live = live

    def inflight(self, colour: Colour) -> int:
        return 0

    def describe_switch(self, live: Colour) -> str:
        return f"fake: live -> {live}"

    def disconnect(self, colour: Colour) -> str:
        return f"closed what was open to {colour}"

    def stop(self, log: Log) -> None:
        self.world.router_running = False

    def destroy(self, dry_run: bool) -> list[str]:
        if not dry_run:
            self.world.router_running = False
        return ["router fake"]

    def reach(self, url: str) -> Reach:
        return Reach(url)

    def stale_for(self) -> float:
        return self.world.stale
    def counters(self) -> Counters | None:
        if not self.world.counting:
            return None
        return Counters(time.time(), {colour: Traffic(requests=n, errors=e) for colour, (n, e)
                                      in list(self.world.counted.items())}, "the fake's counters")


class MemoryStore:
    """The state document and the lock in ``World`` (copied in and out, as a real store would)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def read(self) -> State:
        return State.from_dict("shop", copy.deepcopy(self.world.state))

    def write(self, state: State) -> None:
        self.world.state = copy.deepcopy(state.to_dict())

    def try_lock(self, info: LockInfo) -> LockInfo | None:
        if self.world.lock is not None:
            return self.world.lock
        self.world.lock = info
        return None

    def unlock(self, info: LockInfo) -> None:
        if self.world.lock is not None and self.world.lock.token == info.token:
            self.world.lock = None

    def current_lock(self) -> LockInfo | None:
        return self.world.lock

    def destroy(self, dry_run: bool) -> list[str]:
        done = ["state"] if self.world.state is not None else []
        if not dry_run:
            self.world.state, self.world.lock = None, None
        return done


FAST = {  # health and switch settings that keep a stage to milliseconds
    "health": {"interval": 0.01, "deadline": 1.0, "successes": 1, "timeout": 2.0},
    "switch": {"drain": 0.0, "confirm_requests": 3},
}


@contextmanager
def fake_deployment(tmp_path: Path, world: World,
                    settings: Mapping[str, Mapping[str, Any]] | None = None) -> Iterator[Deployment]:
    """A Deployment of app "shop" over the fakes of ``world`` (its router's two servers run for the
    block). ``settings``: config sections merged over FAST."""
    sections = {name: dict(values) for name, values in FAST.items()}
    for name, values in (settings or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = ['app = "shop"', "[platform]", 'kind = "process"', 'command = "serve {port}"']
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    (tmp_path / "bgci.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config(cwd=tmp_path, environ={})
    servers = [_Server(world, "live"), _Server(world, "preview")]
    threads = [threading.Thread(target=s.serve_forever, args=(0.02,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        urls = [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
        site = Site(platform=FakePlatform(world), store=MemoryStore(world),
                    router_host=_no_host, public_host=lambda: "127.0.0.1")
        yield Deployment(config, StderrLog(-1), Identity("tester"), lock_wait=0.0, site=site,
                         router=FakeRouter(world, urls[0], urls[1]))
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _no_host() -> Any:
    raise AssertionError("the stage core must reach the router through Deployment.router")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


Stage = Callable[..., Any]


class Pipeline:
    """Runs stages against one World, each in a Deployment of its own: (exit code, result)."""

    def __init__(self, tmp_path: Path, world: World) -> None:
        self.tmp_path, self.world = tmp_path, world

    def run(self, name: str, stage: Stage, *args: Any,
            settings: dict[str, dict[str, Any]] | None = None, **kw: Any) -> tuple[int, StageResult]:
        result = StageResult(stage=name, app="shop")
        with fake_deployment(self.tmp_path, self.world, settings) as d:
            try:
                stage(d, result, *args, **kw)
            except BgciError as exc:
                result.message = str(exc)
                return exc.exit_code, result
        return 0, result

    def ok(self, name: str, stage: Stage, *args: Any, **kw: Any) -> StageResult:
        code, result = self.run(name, stage, *args, **kw)
        assert code == 0, f"{name} exited {code}: {result.message}"
        return result

    def refused(self, name: str, stage: Stage, *args: Any, **kw: Any) -> str:
        code, result = self.run(name, stage, *args, **kw)
        assert code == 4, f"{name} should refuse (exit 4), exited {code}: {result.message}"
        return result.message

    def state(self) -> dict[str, Any]:
        assert self.world.state is not None
        return self.world.state

    # the pipeline's usual steps
    def deploy(self, image: str, **kw: Any) -> StageResult:
        return self.ok("deploy-green", deploy_green, image, **kw)

    def verify(self) -> StageResult:
        return self.ok("verify", verify)

    def switch(self, **kw: Any) -> StageResult:
        return self.ok("switch", switch, **kw)

    def release(self, image: str) -> None:
        """``image`` deployed, verified and live."""
        self.deploy(image)
        self.verify()
        self.switch()
