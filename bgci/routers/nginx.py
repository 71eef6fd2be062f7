"""nginx: a generated upstream and server block per address, ``nginx -t``, then a graceful reload.

bgci writes one file it owns (the "site"): an upstream per deployed colour and a server block for
the live and for the preview address, each adding ``X-Bgci-Color`` (``always``: on errors too).
Every change (a switch, a new backend) replaces that file in one rename, runs ``nginx -t`` and,
only when it passes, reloads nginx gracefully (``nginx -s reload``: SIGHUP to the master). New
workers take new connections at once; the old ones finish the requests they have, close their
idle keep-alive connections and exit, at the latest after ``worker_shutdown_timeout``
(= switch.drain for a managed nginx): that is how long streams and WebSockets to the old colour
are drained before nginx closes them. A client that sends a request on an idle keep-alive
connection just as an old worker closes it loses that request unless it retries: nginx allows no
better (``router.client_keepalive = false`` closes each connection after its response, so there is
no idle one to lose; docs/routers.md has the measurements).

nginx has no runtime API, so each server block also answers ``GET /.bgci/colour`` itself with the
colour it serves and the generation of the site file: that is how bgci reads the live colour back
from the running nginx, and how it knows a reload has taken effect.

Managed: a local ``nginx`` (Debian's package) with its own prefix directory and main config, or a
container (``router.image``, default the official image) driven through the engine. Attached
(``managed = false``): ``router.include_file`` is the site, included in the user's ``http {}``;
``router.check_command`` and ``router.reload_command`` test and reload the user's nginx.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from bgci.errors import ConfigError, InfraError
from bgci.log import Log
from bgci.model import Colour
from bgci.ports import Counters, Endpoints, RouterHost, RouterKind
from bgci.routers import LIVE_PORT, PREVIEW_PORT, RouterBase, router_spec
from bgci.routers.binaries import find_binary
from bgci.routers.nginx_conf import COLOUR_PATH, render_main, render_site, site_facts
from bgci.routers.nginx_log import CHUNK, AccessLog
from bgci.settings import Config
from bgci.timings import waits_on

DEFAULT_IMAGE = "nginx:1.27"
DIR = "bgci-nginx"  # under RouterHost.path: /etc/bgci-nginx in a container
TEMPLATE_VERSION = "1"
APPLY_TIMEOUT = 15.0  # seconds for a reload to serve the new site
CONFIRMATIONS = 5  # new connections in a row that must see it
DEFAULT_CHECK, DEFAULT_RELOAD = "nginx -t", "nginx -s reload"
# old workers of a reload: busybox and procps-less images have grep; "dow[n]" keeps grep's own
# command line (which holds the pattern) from matching
# the access log's size, then what it holds from byte $2 on (at most $3 bytes); and emptying it
_LOG_FROM = ('s=$(wc -c < "$1" 2>/dev/null || echo 0); echo "$s"; '
             '[ "$s" -gt "$2" ] && tail -c +"$(($2 + 1))" "$1" | head -c "$3"; exit 0')
_EMPTY = ': > "$1"'
_OLD_WORKERS = 'grep -l "worker process is shutting dow[n]" /proc/[0-9]*/cmdline 2>/dev/null | wc -l'


def nginx_binary() -> str:
    return find_binary("nginx", paths=("/usr/sbin/nginx",),
                       hint="apt-get install nginx (and stop the service it starts: bgci runs its "
                            "own nginx with its own config)")



class NginxRouter(RouterBase):
    """nginx on ``host``: bgci's own (``host.managed``) or the user's, through the same site."""

    def __init__(self, config: Config, host: RouterHost, where: Endpoints) -> None:
        super().__init__(config, host, where)
        if host.managed:
            self.prefix = host.path(DIR)
            self.main, self.site = host.path(f"{DIR}/nginx.conf"), host.path(f"{DIR}/bgci.conf")
            self.binary = nginx_binary() if host.local else "nginx"
            check = [self.binary, *self._options(), "-t"]
            reload = [self.binary, *self._options(), "-s", "reload"]
        else:
            self.prefix = self.main = ""  # the user's nginx.conf: never written
            self.site = host.path(config.router.include_file)
            self.binary = ""
            check = ["/bin/sh", "-c", config.router.check_command or DEFAULT_CHECK]
            reload = ["/bin/sh", "-c", config.router.reload_command or DEFAULT_RELOAD]
        self.check_argv, self.reload_argv = check, reload
        # bgci's own nginx logs each request as a JSON line that counters() counts
        self.access_log = host.path(f"{DIR}/access.log") if host.managed else ""
        self._log = AccessLog(self._log_bytes, self._empty_log)
        image = self.binary if host.local else (config.router.image or DEFAULT_IMAGE)
        self.spec = router_spec("nginx", config, host, where, image=image,
                                command=[self.binary, *self._options()],
                                template=TEMPLATE_VERSION, name=f"your nginx ({self.site})")

    # -- where things are ------------------------------------------------------------------
    def _options(self) -> list[str]:
        # -e: the error log before the config is read (the package's default may not be writable)
        return ["-p", f"{self.prefix}/", "-c", self.main, "-e", "stderr"]

    def _where(self) -> str:
        return f"nginx ({self.spec.name})" if self.managed else self.spec.name

    def _read(self, path: str) -> bytes | None:
        return self.host.read(self.spec, path)

    def _write(self, files: Mapping[str, bytes | None]) -> None:
        """Put ``files`` in place; None removes one (what was there before bgci wrote it)."""
        present = {path: data for path, data in files.items() if data is not None}
        if present:
            self.host.write(self.spec, present)
        for path, data in files.items():
            if data is None:
                self.host.remove(self.spec, path)

    def _check(self) -> tuple[int, str]:
        return self.host.execute(self.spec, self.check_argv)

    def _reload(self) -> tuple[int, str]:
        return self.host.execute(self.spec, self.reload_argv)

    # -- what nginx serves -----------------------------------------------------------------
    def _serving(self, url: str) -> tuple[str, str] | None:
        """(colour or "none", generation) that nginx answers at ``url`` now; None: no answer.

        A new connection each time: an old worker's keep-alive connection would show the past.
        """
        try:
            response = requests.get(url + COLOUR_PATH, timeout=2, allow_redirects=False,
                                    headers={"Connection": "close"})
        except requests.RequestException:
            return None
        parts = response.text.split()
        if response.status_code != 200 or len(parts) != 2:
            raise InfraError(
                f"{url} answers {COLOUR_PATH} with HTTP {response.status_code}, not with bgci's "
                f"colour: {response.text[:100]!r}",
                "another server owns this address"
                + ("" if self.managed else f", or your nginx.conf does not include {self.site} "
                                           "in its http {} block"))
        return parts[0], parts[1]

    def _file_live(self) -> Colour | None:
        raw = self._read(self.site)
        live = site_facts(raw.decode("utf-8", "replace")).get("live") if raw else None
        return _colour(live or "")

    def _files(self, live: Colour | None) -> dict[str, bytes]:
        site = render_site(self.app, self._backends, live, access_log=self.access_log,
                           keepalive=self.config.router.client_keepalive,
                           live_listen=self.host.bind(self.spec, LIVE_PORT),
                           preview_listen=self.host.bind(self.spec, PREVIEW_PORT))
        files = {self.site: site.encode()}
        if self.main:
            files[self.main] = render_main(self.prefix, self.site,
                                           self.config.switch.drain).encode()
        return files

    @waits_on("router")
    def _wait_serving(self, generation: str, timeout: float = APPLY_TIMEOUT) -> None:
        """Until both addresses answer with ``generation`` (InfraError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        seen: tuple[str, str] | None = None
        streak = 0
        while True:
            answers = [self._serving(url) for url in (self.live_url, self.preview_url)]
            # several in a row: a new worker can answer a moment before the old ones, not yet
            # told to stop, have closed their listening sockets
            streak = streak + 1 if all(a is not None and a[1] == generation for a in answers) else 0
            if streak >= CONFIRMATIONS:
                return
            seen = answers[0] or seen
            if time.monotonic() > deadline:
                why = (f"it still serves generation {seen[1]}" if seen
                       else f"nothing answers at {self.live_url}")
                raise InfraError(
                    f"{self._where()} did not serve bgci's new config within {timeout:.0f}s: {why}",
                    "its error log says why (`bgci status` shows the router); live traffic is "
                    "where it was")
            time.sleep(0.02)

    def _apply(self, files: Mapping[str, bytes]) -> None:
        """Write ``files``, ``nginx -t``, reload, wait until served; on any failure put the old
        files back, so that nginx (and its next start) keeps serving what it served."""
        previous = {path: self._read(path) for path in files}
        if all(previous[path] == data for path, data in files.items()):
            return
        generation = site_facts(files[self.site].decode())["generation"]
        self._write(files)
        reloaded = False
        try:
            code, out = self._check()
            if code != 0:
                raise InfraError(f"`nginx -t` refused the new config, so {self._where()} was not "
                                 f"reloaded:\n{out.strip()[-2000:]}",
                                 "live traffic is where it was; fix what nginx -t names")
            code, out = self._reload()
            if code != 0:
                raise InfraError(f"reloading {self._where()} failed (exit {code}): "
                                 f"{out.strip()[-1000:]}",
                                 "is nginx running? live traffic is where it was")
            reloaded = True
            self._wait_serving(generation)
        except InfraError:
            self._write(previous)
            if reloaded:
                self._reload()  # nginx may have taken part of it: back to the old files
            raise

    # -- Router ----------------------------------------------------------------------------
    def _start(self, live: Colour | None, log: Log) -> None:
        log.info(f"starting router {self.spec.name} (nginx; live: {live or 'nothing yet'})")
        files = self._files(live)
        self.host.start(self.spec, files, log)
        self._wait_serving(site_facts(files[self.site].decode())["generation"])

    def _saved_live(self) -> Colour | None:
        return self._file_live()

    def _sync(self, log: Log) -> None:
        served = self._serving(self.live_url)
        live = self._file_live() if served is None else _colour(served[0])
        if served is None and self._read(self.site) is not None:
            log.info(f"{self._where()} does not answer at {self.live_url}: reloading it with "
                     f"{self.site}")
        self._apply(self._files(live))

    def live(self) -> Colour | None:
        served = self._serving(self.live_url)
        if served is None:
            if not self.host.running(self.spec):
                raise InfraError(f"router {self.spec.name} is not running",
                                 "any stage but status starts it again")
            raise InfraError(f"{self._where()} does not answer at {self.live_url}",
                             "is it running and listening on router.listen?")
        return _colour(served[0])

    def _apply_backends(self) -> None:
        self._apply(self._files(self._file_live()))

    def switch(self, live: Colour) -> None:
        self._apply(self._files(live))

    def describe_switch(self, live: Colour) -> str:
        files = self._files(live)
        diffs = []
        for path, data in files.items():
            old = (self._read(path) or b"").decode("utf-8", "replace")
            diffs.append("".join(difflib.unified_diff(
                old.splitlines(True), data.decode().splitlines(True), path,
                f"{path} (after the switch)")))
        diff = "".join(diffs) or "  (no change)\n"
        reload = " ".join(self.reload_argv) if self.managed else self.reload_argv[-1]
        return (f"{self._where()}: {self.site} replaced by rename, `nginx -t`, then a graceful "
                f"reload (`{reload}`)\n{diff}"
                f"`nginx -t` of the new config (nothing was written or reloaded):\n"
                + _indent(self._test_candidate(files[self.site].decode())))

    def _test_candidate(self, site: str) -> str:
        """``nginx -t`` of ``site`` in a scratch prefix: the running nginx never sees it."""
        if not self.host.local:
            scratch = f"/tmp/bgci-nginx-dry-run-{os.urandom(4).hex()}"
            main = render_main(scratch, f"{scratch}/bgci.conf", self.config.switch.drain)
            self.host.write(self.spec, {f"{scratch}/nginx.conf": main.encode(),
                                        f"{scratch}/bgci.conf": site.encode()})
            try:
                _, out = self.host.execute(self.spec, [self.binary, "-t", "-p", f"{scratch}/",
                                                       "-c", f"{scratch}/nginx.conf", "-e", "stderr"])
            finally:
                self.host.execute(self.spec, ["rm", "-rf", scratch])
            return out
        try:
            binary = self.binary if self.managed else nginx_binary()
        except ConfigError as exc:  # attached to an nginx elsewhere: none here to test with
            return f"(not run: {exc.message})"
        with tempfile.TemporaryDirectory(prefix="bgci-nginx-dry-run-") as scratch:
            Path(scratch, "bgci.conf").write_text(site, encoding="utf-8")
            main = (render_main(scratch, f"{scratch}/bgci.conf", self.config.switch.drain)
                    if self.managed else
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

    def inflight(self, colour: Colour) -> int:
        """Old workers of the last reload still finishing requests (nginx does not count them
        per upstream): while there are any, something may still be open to ``colour``."""
        if not self.host.local:
            code, out = self.host.execute(self.spec, ["sh", "-c", _OLD_WORKERS])
            return int(out.strip() or 0) if code == 0 and out.strip().isdigit() else 0
        master = None
        if self.managed:
            pid = (self._read(f"{self.prefix}/nginx.pid") or b"").strip()
            master = int(pid) if pid.isdigit() else None
        return _old_workers(master)

    def counters(self) -> Counters | None:
        """The requests bgci's own nginx logged since bgci first looked (a user's nginx: none)."""
        return self._log.counters() if self.access_log else None

    def _log_bytes(self, offset: int) -> tuple[int, bytes] | None:
        """The access log's size and what it holds from ``offset`` (at most a CHUNK)."""
        if self.host.local:
            try:
                with open(self.access_log, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    handle.seek(offset)
                    return size, handle.read(CHUNK) if size > offset else b""
            except FileNotFoundError:
                return 0, b""
            except OSError:
                return None
        try:
            code, out = self.host.execute(self.spec, ["sh", "-c", _LOG_FROM, "bgci", self.access_log,
                                                      str(offset), str(CHUNK)])
        except InfraError:
            return None
        first, _, rest = out.partition("\n")
        return (int(first), rest.encode()) if code == 0 and first.strip().isdigit() else None

    def _empty_log(self) -> None:
        if self.host.local:
            with contextlib.suppress(OSError):
                os.truncate(self.access_log, 0)
        else:
            with contextlib.suppress(InfraError):
                self.host.execute(self.spec, ["sh", "-c", _EMPTY, "bgci", self.access_log])

    def disconnect(self, colour: Colour) -> str:
        if self.managed:
            return (f"nginx closes them itself: the old workers of the reload close what is still "
                    f"open to {colour} at worker_shutdown_timeout "
                    f"({max(1, round(self.config.switch.drain))}s, from switch.drain)")
        return (f"nginx closes them itself when your nginx.conf sets worker_shutdown_timeout; "
                f"without it, the old workers keep what is open to {colour} until it ends")

    def stop(self, log: Log) -> None:
        if self.managed:
            self.host.stop(self.spec, log)
        else:
            log.info(f"router.managed = false: bgci leaves your nginx running ({self.site} stays)")


def _colour(value: str) -> Colour | None:
    return "blue" if value == "blue" else "green" if value == "green" else None


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in (text.strip() or "(no output)").splitlines())


def _old_workers(master: int | None) -> int:
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


KIND = RouterKind(name="nginx", make=NginxRouter, attach=("include_file",),
                  attach_optional=("reload_command", "check_command"))
