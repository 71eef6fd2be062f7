"""What users do instead of bgci, on the same images under the same load.

Each baseline puts v1 ("blue") live on one address, then moves live traffic to v2 ("green") and
back, ``cycles`` times. A move's command is timed like a bgci stage; its decision is the start of
the command. After each move the benchmark waits until the new colour answers (as a deploy script
would) before it goes on. ``BASELINES`` lists them; each is a class with ``setup`` and ``move``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench.analysis import Event, latency_summary, summarize
from bench.infra import Context, ensure_swarm, free_port, http_ok, say, test_env, wait_until

COLOURS = {"blue": "v1", "green": "v2"}
READY_TIMEOUT = 120.0
GRACE = 10  # seconds `docker stop` gives gunicorn, as docker and compose do by default


def colour_at(url: str) -> str | None:
    """Which colour answers a fresh ``GET url/version`` (None: nothing answers)."""
    import requests

    try:
        response = requests.get(f"{url}/version", timeout=2)
        return str(response.json().get("color")) if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


class Baseline:
    name = ""
    key = ""
    needs = "docker"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.res = ctx.res
        self.prefix = f"bgci-bench-{ctx.run_id}-{type(self).__name__.lower()}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.labels = {"org.bgci.bench": ctx.run_id}

    def unavailable(self) -> str | None:
        if self.ctx.client is None:
            return "no docker engine"
        if not self.ctx.images:
            return "the app images could not be built"
        return None

    def setup(self) -> None: ...

    def move(self, old: str, new: str) -> None:
        """Replace ``old`` by ``new`` the way this baseline does; return when its command returns."""

    def env(self, colour: str) -> dict[str, str]:
        return {"BGCI_COLOR": colour, "PORT": "8000"}

    def own_network(self) -> str:
        """A bridge network of the baseline's own, as compose makes one per project."""
        self.res.network(self.ctx.client.networks.create(self.prefix, driver="bridge", labels=self.labels))
        return self.prefix

    def create(self, colour: str, name: str, **kwargs: Any) -> Any:
        container = self.ctx.client.containers.create(
            self.ctx.images[COLOURS[colour]], name=name, environment=self.env(colour),
            labels=self.labels, detach=True, **kwargs)
        return self.res.container(container)


class StopStart(Baseline):
    """`docker stop old && docker start new`: both created beforehand, the same published port."""

    name = "stop old, start new (same port)"
    key = "stop-start"

    def setup(self) -> None:
        ports = {"8000/tcp": ("127.0.0.1", self.port)}
        net = self.own_network()
        self.containers = {c: self.create(c, f"{self.prefix}-{c}", ports=ports, network=net) for c in COLOURS}
        self.containers["blue"].start()

    def move(self, old: str, new: str) -> None:
        self.containers[old].stop(timeout=GRACE)
        self.containers[new].start()


class ComposeRecreate(Baseline):
    """What `docker compose up -d` does when the image changed: stop, rename, create, remove, start."""

    name = "compose-style recreate"
    key = "compose"

    def setup(self) -> None:
        self.name_ = f"{self.prefix}-app"
        self.net = self.own_network()
        self.current = self.create("blue", self.name_, ports={"8000/tcp": ("127.0.0.1", self.port)},
                                   network=self.net)
        self.current.start()

    def move(self, old: str, new: str) -> None:
        replaced = self.current
        replaced.stop(timeout=GRACE)
        replaced.rename(f"{replaced.id[:12]}_{self.name_}")
        self.current = self.create(new, self.name_, ports={"8000/tcp": ("127.0.0.1", self.port)},
                                   network=self.net)
        replaced.remove(force=True)
        self.current.start()


NGINX_CONF = """daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_timeout 65;
    include {dir}/upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


class NginxReload(Baseline):
    """Both colours running; nginx's upstream file rewritten to the other one, then `nginx -s reload`."""

    name = "nginx upstream swap + reload"
    key = "nginx-reload"

    def unavailable(self) -> str | None:
        import shutil

        self.nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                                else None)
        return super().unavailable() or (None if self.nginx else "no nginx binary (apt-get install nginx)")

    def setup(self) -> None:
        self.own_network()
        self.ips = {}
        for colour in COLOURS:
            container = self.create(colour, f"{self.prefix}-{colour}", network=self.prefix)
            container.start()
            container.reload()
            self.ips[colour] = container.attrs["NetworkSettings"]["Networks"][self.prefix]["IPAddress"]
        self.dir = self.ctx.work / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port), encoding="utf-8")
        self.upstream("blue")
        self.proc = subprocess.Popen([self.nginx_bin, "-p", str(self.dir), "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.res.process(self.proc, "nginx")

    @property
    def nginx_bin(self) -> str:
        return str(self.nginx)

    def upstream(self, colour: str) -> None:
        path = self.dir / "upstream.conf"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"upstream app {{ server {self.ips[colour]}:8000; keepalive 16; }}\n",
                       encoding="utf-8")
        tmp.replace(path)

    def move(self, old: str, new: str) -> None:
        self.upstream(new)
        subprocess.run([self.nginx_bin, "-p", str(self.dir), "-c", str(self.conf), "-s", "reload"],
                       check=True, capture_output=True, timeout=30)


HAPROXY_DNS = """global
    stats timeout 10s
defaults
    mode http
    timeout connect 5s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 65s
    option http-keep-alive
    option redispatch
    retries 3
resolvers docker
    nameserver dns 127.0.0.11:53
    hold valid 1s
    hold other 1s
    hold obsolete 1s
    timeout resolve 500ms
    accepted_payload_size 8192
frontend live
    bind :8080
    default_backend app
backend app
    balance roundrobin
    server-template app 4 tasks.{service}:8000 check inter 500ms fall 1 rise 1 resolvers docker init-addr none
"""


class SwarmStartFirst(Baseline):
    """`docker service update --image ... --update-order start-first` (waits until converged).

    One node cannot start-first a task that publishes a host-mode port (the new task waits for
    the port forever), and the routing mesh does not answer here: so, as without the mesh, a proxy
    service (HAProxy, the one published port, host mode) finds the app's tasks through Swarm's DNS
    (``tasks.<service>``, dnsrr) on an overlay network.
    """

    name = "Swarm start-first rolling update"
    key = "swarm"

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason is None and not test_env().get("BGCI_TEST_HAPROXY_IMAGE"):
            reason = "no local HAProxy image (bash scripts/test-env.sh)"
        return reason

    def setup(self) -> None:
        import docker.types as types

        client = self.ctx.client
        ensure_swarm(self.res)
        net = client.networks.create(self.prefix, driver="overlay", attachable=True, labels=self.labels)
        self.res.network(net)
        self.service_name = f"{self.prefix}-app"
        check = ["CMD", "python3", "-c", "import urllib.request as u; "
                 "u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
        self.app = self.res.service(client.services.create(
            self.ctx.images["v1"], name=self.service_name,
            env=[f"{k}={v}" for k, v in self.env("blue").items()],
            networks=[self.prefix], labels=self.labels,
            endpoint_spec=types.EndpointSpec(mode="dnsrr"),
            healthcheck=types.Healthcheck(test=check, interval=500_000_000, timeout=2_000_000_000,
                                          retries=3, start_period=500_000_000),
            update_config=types.UpdateConfig(parallelism=1, order="start-first", delay=0,
                                             monitor=1_000_000_000, failure_action="pause"),
            stop_grace_period=GRACE * 1_000_000_000))
        config = client.configs.create(name=f"{self.prefix}-haproxy",
                                       data=HAPROXY_DNS.format(service=self.service_name).encode(),
                                       labels=self.labels)
        self.res.add(f"config {self.prefix}-haproxy", config.remove)
        self.res.service(client.services.create(
            test_env()["BGCI_TEST_HAPROXY_IMAGE"], name=f"{self.prefix}-proxy", networks=[self.prefix],
            labels=self.labels,
            configs=[types.ConfigReference(config.id, config.name,
                                           filename="/usr/local/etc/haproxy/haproxy.cfg")],
            endpoint_spec=types.EndpointSpec(ports=[self.published()])))

    def published(self) -> dict[str, Any]:
        return {"Protocol": "tcp", "PublishedPort": self.port, "TargetPort": 8080, "PublishMode": "host"}

    def move(self, old: str, new: str) -> None:
        self.app.reload()
        self.app.update(image=self.ctx.images[COLOURS[new]],
                        env=[f"{k}={v}" for k, v in self.env(new).items()])
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            self.app.reload()
            if (self.app.attrs.get("UpdateStatus") or {}).get("State") == "completed":
                running = [t for t in self.app.tasks() if t["Status"]["State"] == "running"]
                if len(running) == 1:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.service_name}: the update did not converge in {READY_TIMEOUT:.0f}s")


BASELINES: tuple[type[Baseline], ...] = (StopStart, ComposeRecreate, NginxReload, SwarmStartFirst)


def run_baseline(cls: type[Baseline], ctx: Context) -> dict[str, Any]:
    baseline = cls(ctx)
    result: dict[str, Any] = {"name": baseline.name, "kind": "baseline", "key": cls.key}
    reason = baseline.unavailable()
    if reason:
        result["skipped"] = reason
        return result
    events: list[Event] = []
    started_here = ctx.res.checkpoint()
    try:
        say(f"{baseline.name}: setting up v1")
        baseline.setup()
        if not wait_until(lambda: colour_at(baseline.url) == "blue", READY_TIMEOUT, 0.2):
            raise TimeoutError(f"v1 never answered on {baseline.url}")
        with ctx.load(baseline.url, cls.key) as load:
            for cycle in range(ctx.cycles):
                for old, new in (("blue", "green"), ("green", "blue")):
                    start = time.time()
                    baseline.move(old, new)
                    end = time.time()
                    ok = wait_until(lambda n=new: colour_at(baseline.url) == n  # type: ignore[misc]
                                    and http_ok(f"{baseline.url}/healthz"), READY_TIMEOUT, 0.05)
                    name = "switch" if new == "green" else "rollback"
                    events.append(Event(name, start, end, start, old, new, ok=ok,
                                        note="" if ok else f"{new} never answered", settled=time.time()))
                    time.sleep(ctx.gap)
                say(f"{baseline.name}: cycle {cycle + 1}/{ctx.cycles} done")
    except Exception as exc:  # one baseline failing must not stop the others
        result["failure"] = f"{type(exc).__name__}: {exc}"
        say(f"{baseline.name}: FAILED: {exc}")
    finally:
        ctx.res.cleanup(started_here)  # stopped before the next row, so it costs that row nothing
    if events:
        result.update(summarize(load.records, events, load.began, load.ended))
        result["latency"] = latency_summary(result["events"])
    result["cycles"] = sum(1 for e in events if e.name == "rollback")
    return result
