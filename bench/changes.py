"""Everyday changes, each measured side by side with what a team does by hand, under the same load.

``port-change``: the app is live (v1 on port 8000, docker + HAProxy) and the next release listens
on another port. bgci: ``deploy-green`` (v2, ``--set platform.port=9000``), ``verify``,
``switch``, then ``rollback``; each cycle the release moves to a port it never ran on (9000, 9001,
...). By hand: an HAProxy container started from a static ``haproxy.cfg`` (a bind-mounted file)
pointing at the app container on 8000; the team starts the new release's container listening on
the new port, waits until it answers, edits ``haproxy.cfg`` to it and ``docker restart``s the HAProxy
container; back the same way.

``router-upgrade``: ``router.image`` changes to another tag of the same HAProxy image (a tag made
for the run and removed at its end); each cycle flips between the two tags. bgci: the pipeline's
stages with the new config (each must refuse, exit 4, naming ``bgci router reboot``), then
``bgci router reboot``, then ``deploy-green`` to show stages are taken again. By hand: ``docker rm
-f`` the router container and ``docker run`` it again with the new image, the same config and
ports.

Both sides of a change run under the same load as the rows (``Context.load``: keep-alive clients,
no retries), one after the other. The figures: requests lost, and the longest stretch with failing
requests (see :func:`outages`), over the whole side and per step. Nothing here asserts
on a number: the tests check structure and counts, docs/benchmark.md quotes a run.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.analysis import percentile
from bench.baselines import colour_at
from bench.bgci_rows import ROWS, lost_during, project_config
from bench.infra import Context, free_port, http_ok, say, test_env, wait_until
from bench.project import BgciFailed, Call, Project

OLD_PORT = 8000
NEW_PORT = 9000  # cycle k moves the release to NEW_PORT + k: a port its colour never ran on
READY_TIMEOUT = 120.0
# the pause after a step that moves live traffic or restarts the router, on both sides: longer than
# the 1 s after which a client resends a connection request that was dropped while the router's
# container started (it hangs that long), so that each step's stretch is measured on its own
SETTLE = 2.0
HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"  # where the official image (and the test one) reads it
DEFAULT_ROUTER_IMAGE = "haproxy:2.8"  # bgci's default router.image (bgci/routers/haproxy.py)
# the pipeline's stages, run with the changed router.image: each must refuse (exit 4)
REFUSED = ("deploy-green", "verify", "switch", "rollback")
METHOD = [
    "Everyday changes (docker + HAProxy), each side by side with what a team does by hand, under the same "
    "load, one side after the other. A new port: bgci runs `deploy-green` (v2, "
    "`--set platform.port=900k`, a port the colour never ran on), `verify`, `switch`, `rollback` per cycle; "
    "by hand, an HAProxy container with a static, bind-mounted haproxy.cfg: `docker run` v2 listening on "
    "900k, wait until it answers, edit haproxy.cfg, `docker restart` HAProxy, and back the same way.",
    "A router upgrade: router.image changed to another tag of the same image (flipped each cycle). bgci: "
    "`deploy-green`, `verify`, `switch`, `rollback` with the new config (each must refuse, exit 4), then "
    "`bgci router reboot`, then `deploy-green` again; by hand: `docker rm -f` the router container, "
    "`docker run` the new image with the same config and ports.",
    "Longest stretch with failing requests (downtime): the longest time between two successful responses "
    "(by arrival) with failed requests sent in between. Under the load a response arrives every few ms, so "
    "it is how long nobody got an answer: refused, reset, and hanging requests all count (stretches less "
    "than one client's request interval apart are one). Both sides pause 2 s after each step that moves "
    "traffic or restarts the router, so that each step's stretch is its own.",
]


@dataclass
class Step:
    """One command of a side (a bgci call, or what a team types), timed from outside."""

    name: str
    start: float
    end: float
    code: int | None = None  # a bgci call's exit code
    group: str = ""  # what the tables sum it under
    note: str = ""

    @classmethod
    def of(cls, call: Call, group: str) -> Step:
        lines = call.output.strip().splitlines()
        note = lines[-1][:300] if call.code != 0 and lines else ""
        return cls("bgci " + " ".join(call.args), call.start, call.end, call.code, group, note)


def outages(records: Sequence[Sequence[Any]], join: float = 0.0) -> list[dict[str, Any]]:
    """Each stretch with failing requests: the time between two successful responses (by when
    they arrived) with failed requests sent in between. Under the load a response arrives every
    few ms, so this is how long nobody got an answer: requests refused, reset, or hanging until
    they failed or were answered late all count. Stretches at most ``join`` seconds apart are one
    (a response that straggles in on an old connection does not split an outage). A stretch that
    starts before the first success (or ends after the last) starts at its first failed request
    (ends at the last one's end). Each stretch's start, end, length and failed requests."""
    ok_ends = sorted(r[1] for r in records if not r[5])
    found: dict[int, dict[str, Any]] = {}
    for r in sorted((r for r in records if r[5]), key=lambda r: r[0]):
        i = bisect.bisect_right(ok_ends, r[0])  # the successes that arrived before it was sent
        s = found.setdefault(i, {"first": ok_ends[i - 1] if i else r[0],
                                 "last": ok_ends[i] if i < len(ok_ends) else r[1], "lost": 0})
        s["lost"] += 1
        if i == len(ok_ends):
            s["last"] = max(s["last"], r[1])
    out: list[dict[str, Any]] = []
    for i in sorted(found):
        s = found[i]
        if out and s["first"] - out[-1]["last"] <= join:
            out[-1]["last"] = max(out[-1]["last"], s["last"])
            out[-1]["lost"] += s["lost"]
        else:
            out.append(s)
    for s in out:
        s["ms"] = round((s["last"] - s["first"]) * 1000, 1)
    return out


def side_figures(records: Sequence[Sequence[Any]], steps: Sequence[Step], began: float,
                 ended: float, join: float) -> dict[str, Any]:
    """Requests lost and stretches with failing requests of one side, in all and per step (a step
    owns the requests sent from its start to the next step's, and the stretches they failed in)."""
    records = [r for r in records if began <= r[0] < ended]
    stretches = outages(records, join)
    errors: dict[str, int] = {}
    for r in records:
        if r[5]:
            key = str(r[5]).split(":")[0]
            errors[key] = errors.get(key, 0) + 1
    per_step = []
    for i, step in enumerate(steps):
        until = steps[i + 1].start if i + 1 < len(steps) else ended
        mine = [r for r in records if step.start <= r[0] < until]
        # the stretches the step's failed requests fall in (one may have begun a little earlier)
        failed = {r[0] for r in mine if r[5]}
        longest = max((s["ms"] for s in stretches if any(s["first"] <= f <= s["last"] for f in failed)),
                      default=0.0)
        per_step.append({"name": step.name, "group": step.group, "code": step.code,
                         "command_ms": round((step.end - step.start) * 1000, 1), "sent": len(mine),
                         "lost": sum(1 for r in mine if r[5]), "longest_failing_ms": longest,
                         **({"note": step.note} if step.note else {})})
    seconds = max(ended - began, 1e-9)
    return {
        "sent": len(records), "lost": sum(errors.values()), "seconds": round(seconds, 1),
        "requests_per_second": round(len(records) / seconds, 1),
        "longest_failing_ms": max((s["ms"] for s in stretches), default=0.0),
        "stretches": [{"ms": s["ms"], "lost": s["lost"], "at_s": round(s["first"] - began, 2)}
                      for s in stretches],
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "error_samples": sorted({str(r[5]) for r in records if r[5]})[:5],
        "steps": per_step,
    }


def groups(side: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A side's steps summed per group: runs, exit codes, sent, lost, median / max stretch."""
    out: dict[str, dict[str, Any]] = {}
    for step in side.get("steps", []):
        g = out.setdefault(step["group"], {"runs": 0, "codes": {}, "sent": 0, "lost": 0, "stretches": []})
        g["runs"] += 1
        if step["code"] is not None:
            g["codes"][str(step["code"])] = g["codes"].get(str(step["code"]), 0) + 1
        g["sent"] += step["sent"]
        g["lost"] += step["lost"]
        g["stretches"].append(step["longest_failing_ms"])
    for g in out.values():
        values = g.pop("stretches")
        g["longest_failing_ms"] = {"median": percentile(values, 50), "max": max(values, default=None)}
    return out


def ratio(by_hand: float | None, bgci: float | None) -> float | None:
    """by hand / bgci; None when either is missing or bgci's is 0 (the table says "bgci: 0")."""
    if by_hand is None or not bgci:
        return None
    return round(by_hand / bgci, 1)


class Side:
    """One side of a change: what it started (stopped before the next side) and its load."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.steps: list[Step] = []
        self.records: list[list[Any]] = []
        self.result: dict[str, Any] = {"name": name}

    def timed(self, name: str, group: str, action: Callable[[], object]) -> None:
        start = time.time()
        action()
        self.steps.append(Step(name, start, time.time(), None, group))

    def measure(self, url: str, load_name: str, setup: Callable[[], None],
                cycles: Callable[[], None]) -> dict[str, Any]:
        started_here = self.ctx.res.checkpoint()
        load = None
        try:
            setup()
            with self.ctx.load(url, load_name) as load:
                cycles()
        except Exception as exc:  # reported in the results; the other side still runs
            self.result["failure"] = (str(exc) if isinstance(exc, BgciFailed)
                                      else f"{type(exc).__name__}: {exc}")
            say(f"{self.name}: FAILED: {str(exc)[:400]}")
        finally:
            self.ctx.res.cleanup(started_here)
        if load is not None and load.records and self.steps:
            # stretches less than one client's request interval apart are one
            self.result.update(side_figures(load.records, self.steps, load.began, load.ended,
                                            1.0 / self.ctx.rate))
            self.result["groups"] = groups(self.result)
            self.records = [r for r in load.records if load.began <= r[0] < load.ended]
        return self.result


# -- by hand: an HAProxy container with a static haproxy.cfg in front of the app's container -----
STATIC_CFG = """global
    log stdout format raw local0 err
defaults
    mode http
    timeout connect 5s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 65s
    option http-keep-alive
frontend live
    bind :8080
    default_backend app
backend app
    server app {server}
"""


class HandMade:
    """What a team runs: its own network, the app's containers, HAProxy from a bind-mounted file."""

    def __init__(self, ctx: Context, what: str, image: str) -> None:
        self.ctx, self.client, self.res = ctx, ctx.client, ctx.res
        self.prefix = f"bgci-bench-{ctx.run_id}-{what}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.labels = {"org.bgci.bench": ctx.run_id}
        self.image = image
        self.dir = ctx.work / "by-hand" / what
        self.cfg = self.dir / "haproxy.cfg"

    def network(self) -> None:
        self.res.network(self.client.networks.create(self.prefix, driver="bridge", labels=self.labels))

    def app(self, tag: str, colour: str, port: int, name: str) -> Any:
        """`docker run -d --name NAME --network NET -e PORT=port image:tag` (detached)."""
        container = self.res.container(self.client.containers.create(
            self.ctx.images[tag], name=f"{self.prefix}-{name}", network=self.prefix, labels=self.labels,
            environment={"BGCI_COLOR": colour, "PORT": str(port)}, detach=True))
        container.start()
        return container

    def write_cfg(self, server: str) -> None:
        """The team edits haproxy.cfg (an editor writes a new file and renames it over the old)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cfg.with_suffix(".tmp")
        tmp.write_text(STATIC_CFG.format(server=server), encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(self.cfg)

    def run_router(self, image: str) -> Any:
        """`docker run -d --name P-haproxy --network NET -p 127.0.0.1:PORT:8080
        -v ./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro IMAGE`."""
        self.router = self.res.container(self.client.containers.run(
            image, name=f"{self.prefix}-haproxy", network=self.prefix, labels=self.labels,
            ports={"8080/tcp": ("127.0.0.1", self.port)},
            volumes={str(self.cfg): {"bind": HAPROXY_CFG, "mode": "ro"}}, detach=True))
        return self.router

    def healthy(self, container: Any, port: int) -> bool:
        """What a careful team checks before it touches the proxy: the new container answers."""
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][self.prefix]["IPAddress"]
        return bool(ip) and http_ok(f"http://{ip}:{port}/healthz", timeout=1.0)

    def wait_for(self, colour: str) -> None:
        if not wait_until(lambda: colour_at(self.url) == colour, READY_TIMEOUT, 0.05):
            raise TimeoutError(f"{colour} never answered on {self.url}")


def router_image(ctx: Context) -> str | None:
    """The HAProxy image the benchmark's docker rows use, when it is on the engine."""
    image = test_env().get("BGCI_TEST_HAPROXY_IMAGE") or DEFAULT_ROUTER_IMAGE
    try:
        ctx.client.images.get(image)
    except Exception:  # not pulled, not built: the change cannot run here
        return None
    return image


def unavailable(ctx: Context) -> str | None:
    import importlib.util

    for module in ("bgci.routers.haproxy", "bgci.platforms.docker"):
        if importlib.util.find_spec(module) is None:
            return f"{module} does not exist in this checkout"
    if ctx.client is None:
        return "no docker engine"
    if not ctx.images:
        return "the app images could not be built"
    if router_image(ctx) is None:
        return "no local HAProxy image (bash scripts/test-env.sh)"
    return None


def bgci_project(ctx: Context, app: str, image: str) -> Project:
    """The `haproxy` row's project (docker, port 8000) with ``router.image`` = ``image``."""
    config = project_config(app, ROWS[0], ctx)
    config["router"]["image"] = image
    return Project(ctx.work / "changes" / app, config, ctx.res)


def go_live(ctx: Context, project: Project, image: str) -> None:
    """v1 live; `bgci down` and what bgci made are undone when the side ends."""
    ctx.res.add(f"bgci app {project.app}", project.down)
    project.bgci("deploy-green", "--image", image)
    project.bgci("verify")
    project.bgci("switch")


# -- a new port ---------------------------------------------------------------------------------
PORT_BGCI_GROUPS = ("deploy-green", "verify", "switch", "rollback")
PORT_HAND_GROUPS = ("start the new release", "switch", "rollback", "remove the new release")


def port_change(ctx: Context) -> dict[str, Any]:
    image = router_image(ctx) or DEFAULT_ROUTER_IMAGE
    result: dict[str, Any] = {"key": "port-change", "name": "a new port (docker + HAProxy)",
                              "old_port": OLD_PORT,
                              "new_ports": [NEW_PORT + k for k in range(ctx.cycles)]}

    # bgci
    app = f"bench-pc-{ctx.run_id}"
    bgci = Side(ctx, "bgci: deploy-green, verify, switch, rollback with platform.port changed")
    project = bgci_project(ctx, app, image)

    def bgci_setup() -> None:
        say(f"port change, bgci: v1 live on :{OLD_PORT}")
        go_live(ctx, project, ctx.images["v1"])

    def bgci_cycles() -> None:
        for cycle in range(ctx.cycles):
            port = NEW_PORT + cycle
            opts = ("--set", f"platform.port={port}")
            again = cycle > 0  # the previous rollback quarantined v2: redeploy it on purpose
            for group, args in (
                    ("deploy-green", ("deploy-green", "--image", ctx.images["v2"],
                                      *(["--allow-quarantined"] if again else []))),
                    ("verify", ("verify",)),
                    ("switch", ("switch", *(["--force"] if again else []))),
                    ("rollback", ("rollback",))):
                bgci.steps.append(Step.of(project.bgci(*args, options=opts), group))
                if group in ("switch", "rollback"):
                    time.sleep(max(ctx.gap, SETTLE))
            say(f"port change, bgci: cycle {cycle + 1}/{ctx.cycles} done (v2 on :{port} and back)")
        status = project.bgci("status", check=False)
        colours = (status.report or {}).get("extra", {}).get("status", {}).get("colors") or {}
        bgci.result["ports_recorded"] = {c: v.get("port") for c, v in colours.items()}

    result["bgci"] = bgci.measure(project.live_url, app, bgci_setup, bgci_cycles)
    if bgci.records:
        result["bgci"]["lost_during"] = lost_during(bgci.records, project.calls)
    result["bgci"]["calls"] = [c.summary() for c in project.calls]

    # by hand
    hand = Side(ctx, "by hand: docker run on the new port, edit haproxy.cfg, docker restart HAProxy")
    made = HandMade(ctx, "portchange", image)

    def hand_setup() -> None:
        say(f"port change, by hand: v1 live on :{OLD_PORT} behind a static haproxy.cfg")
        made.network()
        made.app("v1", "blue", OLD_PORT, "v1")
        made.write_cfg(f"{made.prefix}-v1:{OLD_PORT}")
        made.run_router(image)
        made.wait_for("blue")

    def hand_cycles() -> None:
        for cycle in range(ctx.cycles):
            port = NEW_PORT + cycle
            name = f"v2-{cycle}"
            started: dict[str, Any] = {}

            def start_new(port: int = port, name: str = name, started: dict[str, Any] = started) -> None:
                container = started["v2"] = made.app("v2", "green", port, name)
                if not wait_until(lambda: made.healthy(container, port), READY_TIMEOUT, 0.1):
                    raise TimeoutError(f"v2 never answered on :{port}")

            def remove(started: dict[str, Any] = started) -> None:
                started["v2"].remove(force=True)  # `docker rm -f`

            def switch(port: int = port, name: str = name) -> None:
                made.write_cfg(f"{made.prefix}-{name}:{port}")
                made.router.restart(timeout=10)  # `docker restart` (its default -t 10)

            def rollback() -> None:
                made.write_cfg(f"{made.prefix}-v1:{OLD_PORT}")
                made.router.restart(timeout=10)

            hand.timed(f"docker run v2 on :{port}, wait until it answers", "start the new release",
                       start_new)
            hand.timed("edit haproxy.cfg, docker restart HAProxy", "switch", switch)
            made.wait_for("green")
            time.sleep(max(ctx.gap, SETTLE))
            hand.timed("edit haproxy.cfg back, docker restart HAProxy", "rollback", rollback)
            made.wait_for("blue")
            time.sleep(max(ctx.gap, SETTLE))
            hand.timed("docker rm -f v2", "remove the new release", remove)
            say(f"port change, by hand: cycle {cycle + 1}/{ctx.cycles} done (v2 on :{port} and back)")

    result["by_hand"] = hand.measure(made.url, f"{made.prefix}", hand_setup, hand_cycles)
    result["comparison"] = compare(result, PORT_BGCI_GROUPS, PORT_HAND_GROUPS)
    return result


# -- a router upgrade ---------------------------------------------------------------------------
UPGRADE_BGCI_GROUPS = ("refused", "reboot", "after")
UPGRADE_HAND_GROUPS = ("reboot",)


def router_upgrade(ctx: Context) -> dict[str, Any]:
    image = router_image(ctx) or DEFAULT_ROUTER_IMAGE
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    tag = f"bench-{ctx.run_id}"
    other = f"{repo}:{tag}"
    ctx.client.images.get(image).tag(repo, tag)  # the same image under another tag: a new router.image

    def untag() -> None:
        ctx.client.images.remove(other, noprune=True)  # the tag only: the image stays

    ctx.res.add(f"image tag {other}", untag)
    images = [other, image]  # cycle k runs images[k % 2]: the new tag, then back, ...
    result: dict[str, Any] = {"key": "router-upgrade",
                              "name": "a router upgrade: router.image changed (docker + HAProxy)",
                              "images": [images[k % 2] for k in range(ctx.cycles)], "from": image}

    # bgci
    app = f"bench-ru-{ctx.run_id}"
    bgci = Side(ctx, "bgci: stages refused until `bgci router reboot`")
    project = bgci_project(ctx, app, image)
    reboots: list[dict[str, Any]] = []

    def bgci_setup() -> None:
        say(f"router upgrade, bgci: v1 live behind {image}")
        go_live(ctx, project, ctx.images["v1"])

    def bgci_cycles() -> None:
        for cycle in range(ctx.cycles):
            new_image = images[cycle % 2]
            opts = ("--set", f"router.image={new_image}")
            for stage in REFUSED:
                args = ("deploy-green", "--image", ctx.images["v2"]) if stage == "deploy-green" else (stage,)
                call = project.bgci(*args, options=opts, check=False)
                step = Step.of(call, "refused")
                step.note = "names `bgci router reboot`" if "router reboot" in call.output else step.note
                bgci.steps.append(step)
                if call.code != 4:
                    raise BgciFailed(f"{app}: `bgci {stage}` with router.image={new_image} exited "
                                     f"{call.code}, not 4 (refused):\n{call.output[-1500:]}")
            call = project.bgci("router", "reboot", options=opts)
            bgci.steps.append(Step.of(call, "reboot"))
            extra = (call.report or {}).get("extra", {}).get("reboot") or {}
            reboots.append({"image": new_image, **extra})
            time.sleep(max(ctx.gap, SETTLE))
            call = project.bgci("deploy-green", "--image", ctx.images["v2"], options=opts)
            bgci.steps.append(Step.of(call, "after"))
            time.sleep(ctx.gap)
            say(f"router upgrade, bgci: cycle {cycle + 1}/{ctx.cycles} done (router on {new_image})")

    result["bgci"] = bgci.measure(project.live_url, app, bgci_setup, bgci_cycles)
    result["bgci"]["reboots"] = reboots
    if bgci.records:
        result["bgci"]["lost_during"] = lost_during(bgci.records, project.calls)
    result["bgci"]["calls"] = [c.summary() for c in project.calls]

    # by hand
    hand = Side(ctx, "by hand: docker rm -f the router, docker run the new image")
    made = HandMade(ctx, "routerupgrade", image)

    def hand_setup() -> None:
        say(f"router upgrade, by hand: v1 live behind {image} (static haproxy.cfg)")
        made.network()
        made.app("v1", "blue", OLD_PORT, "v1")
        made.write_cfg(f"{made.prefix}-v1:{OLD_PORT}")
        made.run_router(image)
        made.wait_for("blue")

    def hand_cycles() -> None:
        for cycle in range(ctx.cycles):
            new_image = images[cycle % 2]

            def replace(new_image: str = new_image) -> None:
                made.router.remove(force=True)  # `docker rm -f`
                made.run_router(new_image)  # `docker run` with the same name, config and ports

            hand.timed(f"docker rm -f HAProxy, docker run {new_image}", "reboot", replace)
            made.wait_for("blue")
            time.sleep(max(ctx.gap, SETTLE))
            say(f"router upgrade, by hand: cycle {cycle + 1}/{ctx.cycles} done (router on {new_image})")

    result["by_hand"] = hand.measure(made.url, made.prefix, hand_setup, hand_cycles)
    result["comparison"] = compare(result, UPGRADE_BGCI_GROUPS, UPGRADE_HAND_GROUPS)
    return result


def compare(result: dict[str, Any], bgci_groups: tuple[str, ...],
            hand_groups: tuple[str, ...]) -> dict[str, Any]:
    """Lost requests and the longest failing stretch, bgci against by hand, over the steps that
    change something (per group, summed), with by hand / bgci ratios."""
    out: dict[str, Any] = {}
    sides = {"bgci": (result.get("bgci") or {}, bgci_groups), "by_hand": (result.get("by_hand") or {},
                                                                          hand_groups)}
    for who, (side, names) in sides.items():
        g = side.get("groups") or {}
        if "sent" not in side:
            out[who] = None
            continue
        out[who] = {"lost": side["lost"], "longest_failing_ms": side["longest_failing_ms"],
                    "per_group": {n: g[n] for n in names if n in g}}
    b, h = out.get("bgci"), out.get("by_hand")
    if b and h:
        out["ratio_lost"] = ratio(h["lost"], b["lost"])
        out["ratio_longest_failing"] = ratio(h["longest_failing_ms"], b["longest_failing_ms"])
    return out


@dataclass(frozen=True)
class Change:
    key: str  # what --rows names it by
    name: str
    run: Callable[[Context], dict[str, Any]]


CHANGES = (
    Change("port-change", "a new port (docker + HAProxy)", port_change),
    Change("router-upgrade", "a router upgrade: router.image changed (docker + HAProxy)", router_upgrade),
)


def run_change(change: Change, ctx: Context) -> dict[str, Any]:
    reason = unavailable(ctx)
    if reason:
        say(f"{change.name}: skipped: {reason}")
        return {"key": change.key, "name": change.name, "skipped": reason}
    started_here = ctx.res.checkpoint()
    try:
        result = change.run(ctx)
    except Exception as exc:  # a change that cannot even start: reported, the others still run
        say(f"{change.name}: FAILED: {exc}")
        result = {"key": change.key, "name": change.name, "failure": f"{type(exc).__name__}: {exc}"}
    finally:
        ctx.res.cleanup(started_here)
    result["cycles"] = ctx.cycles
    return result
