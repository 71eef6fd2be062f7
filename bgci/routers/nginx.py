"""nginx: a generated upstream per colour and server block per address; a switch flips a flag file.

bgci writes one file it owns (the "site"): an upstream per deployed colour and a server block for
the live and for the preview address, each adding ``X-Bgci-Color`` (``always``: on errors too).
Which colour each address serves is not in the site: each server block sets it per request from
two flag files in a directory of bgci's (``green.flag``: green is live; else ``blue.flag``: blue;
neither: nothing yet), which nginx checks (a ``stat``) on every request. A switch creates one flag
(in one rename) and removes the other: no reload, so no keep-alive connection is closed and no
request is lost, and the next request on any connection, old or new, goes to the new colour.
Streams and WebSockets already open to the old colour stay open to it (it keeps running) until
they end or a reload's ``worker_shutdown_timeout`` closes them (see ``disconnect``).

A new backend address (a colour deployed again) changes the site: it is replaced in one rename,
``nginx -t`` checks it and, only when it passes, nginx reloads gracefully (``nginx -s reload``:
SIGHUP to the master). New workers take new connections at once; the old ones finish the requests
they have, close their idle keep-alive connections and exit, at the latest after
``worker_shutdown_timeout`` (= switch.drain for a managed nginx). A client that sends a request on
an idle keep-alive connection just as an old worker closes it loses that request unless it
retries (``router.client_keepalive = false`` closes each connection after its response, so there
is no idle one to lose; docs/routers.md has the measurements). That reload happens at a deploy,
to the idle colour's address, not at the switch.

The flags' directory is writable by bgci's user only (0755); nginx's workers only need to look
into it. A managed local nginx started by root runs its workers as root too (like HAProxy,
Traefik and Caddy, which bgci runs as one process each), because nginx's default worker user
(nobody) could not look into bgci's state directory.

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
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from bgci.errors import ConfigError, InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour
from bgci.ports import Counters, Endpoints, RouterHost, RouterKind
from bgci.routers import (
    LIVE_PORT,
    PREVIEW_PORT,
    RouterBase,
    router_spec,
    switch_dir,
    wait_colours,
)
from bgci.routers.binaries import find_binary
from bgci.routers.nginx_check import OLD_WORKERS, check_beside, check_here, old_workers
from bgci.routers.nginx_conf import COLOUR_PATH, flag, render_main, render_site, site_facts
from bgci.routers.nginx_log import CHUNK, AccessLog
from bgci.settings import Config
from bgci.timings import waits_on

DEFAULT_IMAGE = "nginx:1.27"
DIR = "bgci-nginx"  # under RouterHost.path: /etc/bgci-nginx in a container
TEMPLATE_VERSION = "1"
APPLY_TIMEOUT = 15.0  # seconds for a reload to serve the new site
FLIP_TIMEOUT = 5.0  # seconds for a flipped flag to be seen (nginx looks on every request)
CONFIRMATIONS = 5  # new connections in a row that must see it
DEFAULT_CHECK, DEFAULT_RELOAD = "nginx -t", "nginx -s reload"
# the access log's size, then what it holds from byte $2 on (at most $3 bytes); and emptying it
_LOG_FROM = ('s=$(wc -c < "$1" 2>/dev/null || echo 0); echo "$s"; '
             '[ "$s" -gt "$2" ] && tail -c +"$(($2 + 1))" "$1" | head -c "$3"; exit 0')
_EMPTY = ': > "$1"'


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
            self.flags = host.path(f"{DIR}/live")
            self.binary = nginx_binary() if host.local else "nginx"
            check = [self.binary, *self._options(), "-t"]
            reload = [self.binary, *self._options(), "-s", "reload"]
        else:
            self.prefix = self.main = ""  # the user's nginx.conf: never written
            self.site = host.path(config.router.include_file)
            # beside the site, hidden: an `include sites/*` never reads it as a config file
            site = Path(self.site)
            self.flags = str(site.with_name(f".{site.name}.live"))
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

    def _colour_at(self, url: str) -> str | None:
        served = self._serving(url)
        return served[0] if served else None

    def _file_live(self) -> Colour | None:
        """The live colour the flags say (green's wins), or the site of an earlier bgci."""
        flagged = self._flagged()
        if flagged:
            return "green" if "green" in flagged else "blue"
        raw = self._read(self.site)
        live = site_facts(raw.decode("utf-8", "replace")).get("live") if raw else None
        return _colour(live or "")

    def _files(self) -> dict[str, bytes]:
        site = render_site(self.app, self._backends, flags=self.flags, access_log=self.access_log,
                           keepalive=self.config.router.client_keepalive,
                           live_listen=self.host.bind(self.spec, LIVE_PORT),
                           preview_listen=self.host.bind(self.spec, PREVIEW_PORT))
        files = {self.site: site.encode()}
        if self.main:
            # root's nginx would run its workers as nobody, who cannot look into bgci's files
            user = "root" if self.host.local and os.geteuid() == 0 else ""
            files[self.main] = render_main(self.prefix, self.site, self.config.switch.drain,
                                           user=user).encode()
        return files

    # -- the flags: which colour is live ---------------------------------------------------
    def _flagged(self) -> set[Colour]:
        return {colour for colour in COLOURS if self._read(flag(self.flags, colour)) is not None}

    def _flag_dir(self) -> None:
        """The flags' directory: bgci's user alone may write in it, nginx's workers look in."""
        if self.host.local:
            switch_dir(self.flags)

    def _flip(self, live: Colour | None) -> None:
        """Make ``live`` the live colour in one step nginx sees: the new flag first (green's
        wins, so creating green.flag is the switch to green), then the other one removed
        (removing green.flag is the switch to blue). Never a moment with the wrong colour."""
        self._flag_dir()
        if live is not None:
            self.host.write(self.spec, {flag(self.flags, live): b""})
        for colour in COLOURS:
            if colour != live:
                self.host.remove(self.spec, flag(self.flags, colour))

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
        files = self._files()
        self._flag_dir()
        for colour in COLOURS:  # a container started anew has none; a local one keeps its files
            self.host.remove(self.spec, flag(self.flags, colour))
        if live is not None:
            files[flag(self.flags, live)] = b""
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
        if self._flagged() != ({live} if live else set()):
            self._flip(live)  # e.g. a site an earlier bgci wrote, which named the colour itself
        self._apply(self._files())

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
        self._apply(self._files())

    def switch(self, live: Colour) -> None:
        """The site first, in case a backend changed (a reload; nothing to do as a rule), then
        the flags: no reload. Flags put back and InfraError when nginx does not show them."""
        self._apply(self._files())
        before = self.live()  # InfraError (exit 3) when nginx does not answer: nothing flipped
        self._flip(live)
        if not wait_colours(self._colour_at, self.endpoints, live, FLIP_TIMEOUT, CONFIRMATIONS):
            self._flip(before)
            raise InfraError(
                f"{self._where()} did not serve {live} at {self.live_url} within "
                f"{FLIP_TIMEOUT:.0f}s of bgci creating {flag(self.flags, live)}",
                f"can nginx's worker user look into {self.flags}? (nginx checks the flag on every "
                "request); live traffic is back where it was")

    def describe_switch(self, live: Colour) -> str:
        files = self._files()
        diffs = []
        for path, data in files.items():
            old = (self._read(path) or b"").decode("utf-8", "replace")
            diffs.append("".join(difflib.unified_diff(
                old.splitlines(True), data.decode().splitlines(True), path,
                f"{path} (a colour's address changed)")))
        diff = "".join(diffs)
        reload = " ".join(self.reload_argv) if self.managed else self.reload_argv[-1]
        now = self._flagged()
        flips = [f"+ {flag(self.flags, live)} (created: {live} is live)"] if live not in now else []
        flips += [f"- {flag(self.flags, colour)} (removed)" for colour in COLOURS
                  if colour != live and colour in now]
        plan = (f"{self._where()}: the flags in {self.flags}, no reload (nginx checks them on "
                "every request)\n" + "".join(f"{line}\n" for line in flips)
                + ("" if flips else f"  (no change: {live} is live already)\n"))
        if diff:
            plan += (f"and first {self.site} replaced by rename, `nginx -t`, then a graceful "
                     f"reload (`{reload}`)\n{diff}")
        return (plan + "`nginx -t` of the config (nothing was written or reloaded):\n"
                + _indent(self._test_candidate(files[self.site].decode())))

    def _test_candidate(self, site: str) -> str:
        """``nginx -t`` of ``site`` in a scratch prefix: the running nginx never sees it."""
        drain = self.config.switch.drain
        if not self.host.local:
            return check_beside(self.host, self.spec, self.binary, site, drain)
        try:
            binary = self.binary if self.managed else nginx_binary()
        except ConfigError as exc:  # attached to an nginx elsewhere: none here to test with
            return f"(not run: {exc.message})"
        return check_here(binary, site, drain, managed=self.managed)

    def inflight(self, colour: Colour) -> int:
        """Old workers of the last reload still finishing requests (nginx does not count them
        per upstream): while there are any, something may still be open to ``colour``."""
        if not self.host.local:
            code, out = self.host.execute(self.spec, ["sh", "-c", OLD_WORKERS])
            return int(out.strip() or 0) if code == 0 and out.strip().isdigit() else 0
        master = None
        if self.managed:
            pid = (self._read(f"{self.prefix}/nginx.pid") or b"").strip()
            master = int(pid) if pid.isdigit() else None
        return old_workers(master)

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
        """Nothing is closed: a switch does not reload nginx (a reload would close idle
        keep-alive connections too, and lose requests), so streams and WebSockets opened to the
        old colour stay open to it (it keeps running) until they end; old workers of an earlier
        reload close what they have at worker_shutdown_timeout."""
        timeout = (f"worker_shutdown_timeout ({max(1, round(self.config.switch.drain))}s, from "
                   "switch.drain)" if self.managed else
                   "worker_shutdown_timeout, when your nginx.conf sets it")
        return (f"streams and WebSockets opened to {colour} before the switch stay open to it "
                f"until they end (the switch does not reload nginx, which would cut keep-alive "
                f"clients); what old workers of an earlier reload still hold is closed at "
                f"{timeout}")

    def stop(self, log: Log) -> None:
        if self.managed:
            self.host.stop(self.spec, log)
        else:
            log.info(f"router.managed = false: bgci leaves your nginx running ({self.site} stays)")


def _colour(value: str) -> Colour | None:
    return "blue" if value == "blue" else "green" if value == "green" else None


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in (text.strip() or "(no output)").splitlines())


KIND = RouterKind(name="nginx", make=NginxRouter, attach=("include_file",),
                  attach_optional=("reload_command", "check_command"))
