"""The process platform: the embedded default that needs no container engine.

Everything lives in the state dir (``platform.state_dir``, default ``~/.local/state/bgci``)::

    <app>/releases/<id>/     one release: sources + virtualenv (see ``releases.py``)
    <app>/colours/<colour>/  process.json (pid, start time, port, release) and output.log
    <app>/router/            the managed router's files, pidfile and log (``hosts/local.py``)
    <app>/state.json         the deployment state, and lock.json, the deploy lock (``state/files.py``)

A colour is ``platform.command`` run by ``/bin/sh`` in the release's sources, with the release's
virtualenv first on PATH, ``{port}`` replaced by a port of 127.0.0.1 (the colour's port of its
last run when that is free, so that the router's addresses stay as they were; else a free one),
as the leader of a
process group of its own that outlives bgci. Stopping it sends SIGTERM to the whole group, waits,
then sends SIGKILL to whatever is left of the group.

With ``platform.hosts`` each colour has an address of its own instead (``{host}``), and both
listen on ``platform.port``: what a DNS switch needs, since a record names an address, not a port.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from bgci import crash, detached
from bgci.errors import ConfigError, InfraError
from bgci.log import Log
from bgci.model import COLOURS, Colour, ColourSpec, Instance, Release
from bgci.platforms.releases import ReleaseInfo, build_release, check_id, venv_python
from bgci.settings import Config
from bgci.timings import waits_on

# What a colour inherits from bgci's environment. The rest (CI tokens, registry passwords) stays
# out of a long-running app, as on docker; the app's own settings come from platform.env.
FAILURE_LINES = 15  # of a crashed colour's output, in the failure message
OUTPUT_CHUNK = 1024 * 1024  # the most of a colour's output read in one look
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def state_root(config: Config) -> Path:
    """``platform.state_dir`` as an absolute path (``~`` expanded, relative to the config file)."""
    path = Path(os.path.expanduser(config.platform.state_dir))
    return path if path.is_absolute() else (config.root / path).resolve()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the colour binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """True when a server could listen on ``port`` of 127.0.0.1 now (as servers do: with
    SO_REUSEADDR, so that connections of the colour's last run in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProcessPlatform:
    """Colours as detached process groups on this machine, releases as venvs in the state dir."""

    name = "process"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = config.app
        self.root = state_root(config) / self.app
        self.builds = self.root / "releases"  # one directory per release (`releases()` lists them)

    # -- releases --------------------------------------------------------------------------
    def build(self, tag: str, log: Log, labels: Mapping[str, str]) -> Release:
        context = (self.config.root / self.config.build.context).resolve()
        reports = (self.config.root / self.config.reports.dir).resolve()
        info = build_release(self.builds, tag, context, excluded={self.root.parent.resolve(), reports},
                             in_use=self._runs, log=log, labels=labels)
        return Release(image=info.id, digest=info.digest)

    def tagged(self, tag: str) -> Release | None:
        try:
            where = self.builds / check_id(tag)
        except ConfigError:
            return None  # not a release id: the build itself says so
        info = ReleaseInfo.load(where)
        if info is None or not venv_python(where).exists():
            return None
        return Release(image=info.id, digest=info.digest)

    def _runs(self, release_id: str) -> str | None:
        """The colour that runs release ``release_id`` of this app now, if any."""
        wanted = (self.builds / release_id).resolve()
        for colour, instance in self.instances().items():
            if instance.running and self._release_dir(instance.release.image).resolve() == wanted:
                return colour
        return None

    def _release_dir(self, image: str) -> Path:
        """A release id names ``releases/<id>`` of this app; a path names any release directory
        on this machine (one app's build deployed as another app, as the end-to-end tests do)."""
        if "/" in image:
            return Path(image)
        return self.builds / check_id(image)

    def resolve(self, image: str) -> Release:
        info = ReleaseInfo.load(self._release_dir(image))
        if info is None:
            raise ConfigError(f"no release {image!r} in {self.builds}",
                              "run `bgci build` first or pass --image with a release id it built")
        return Release(image=image if "/" in image else info.id, digest=info.digest)

    def has(self, release: Release) -> bool:
        where = self._release_dir(release.image)
        info = ReleaseInfo.load(where)
        return info is not None and info.digest == release.digest and venv_python(where).exists()

    def _env(self, release_dir: Path, app_env: Mapping[str, str],
             extra: Mapping[str, str]) -> dict[str, str]:
        venv = release_dir / "venv"
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.update(app_env)
        env.update(extra)
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        env.setdefault("PYTHONUNBUFFERED", "1")  # the log file shows what the app printed so far
        return env

    # -- colours ---------------------------------------------------------------------------
    def _dir(self, colour: Colour) -> Path:
        return self.root / "colours" / colour

    def spec(self) -> ColourSpec:
        # port 0: each start takes a free port of 127.0.0.1, recorded with the colour; with
        # platform.hosts both colours listen on platform.port, each at its own address
        port = self.config.platform.port if self.config.platform.hosts else 0
        return ColourSpec(port=port, env=dict(self.config.platform.env),
                          command=self.config.platform.command)

    def _host(self, colour: Colour) -> str:
        return self.config.platform.hosts.get(colour, "127.0.0.1")

    def start(self, colour: Colour, release: Release, spec: ColourSpec, log: Log) -> Instance:
        command = spec.command
        if not command:
            raise ConfigError(f"{self.config.source}: platform.command is required with "
                              "platform.kind = \"process\"",
                              "e.g. command = \"gunicorn app:app -b 127.0.0.1:{port}\"")
        if not self.has(release):
            raise ConfigError(f"release {release.short} is not built in {self.builds}",
                              "run `bgci build` on this machine first")
        before = detached.read_record(self._dir(colour) / "process.json")
        self.stop(colour, min(self.config.switch.drain, 10.0), log)
        release_dir = self._release_dir(release.image)
        host = self._host(colour)
        if self.config.platform.hosts and spec.port:
            port = spec.port
        else:  # the colour's port of last time when it is free: its router need not reload
            last = before.facts.get("port") if before else None
            port = last if isinstance(last, int) and port_is_free(last) else free_port()
        env = self._env(release_dir, spec.env, {"BGCI_COLOR": colour, "BGCI_APP": self.app,
                                                "PORT": str(port)})
        where = self._dir(colour)
        where.mkdir(parents=True, exist_ok=True)
        log_path = where / "output.log"
        if log_path.exists():
            log_path.replace(where / "output.log.1")
        try:
            record = detached.spawn(
                ["/bin/sh", "-c", command.replace("{port}", str(port)).replace("{host}", host)],
                cwd=release_dir / "app", env=env, log_path=log_path,
                facts={"colour": colour, "host": host, "port": port, "release": release.to_dict(),
                       "command": command, "spec": spec.to_dict()},
            )
        except OSError as exc:
            raise InfraError(f"could not start {colour}: {exc}") from exc
        detached.write_record(where / "process.json", record)
        log.info(f"{colour}: started pid {record.pid} running {release.short} on "
                 f"{_address(host, port)}")
        instance = self._instance(colour, record)
        assert instance is not None
        return instance

    def _instance(self, colour: Colour, record: detached.PidRecord) -> Instance | None:
        release = Release.from_dict(record.facts.get("release"))
        port = record.facts.get("port")
        host = str(record.facts.get("host") or "127.0.0.1")  # bgci before platform.hosts: 127.0.0.1
        if release is None or not isinstance(port, int):
            return None
        return Instance(colour=colour, release=release, address=_address(host, port),
                        running=detached.alive(record), started_at=record.started_at,
                        direct_url=f"http://{_address(host, port)}",
                        spec=ColourSpec.from_dict(record.facts.get("spec")))

    def instances(self) -> dict[Colour, Instance]:
        found: dict[Colour, Instance] = {}
        for colour in COLOURS:
            record = detached.read_record(self._dir(colour) / "process.json")
            instance = self._instance(colour, record) if record else None
            if instance is not None:
                found[colour] = instance
        return found

    @waits_on("app")
    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        pidfile = self._dir(colour) / "process.json"
        record = detached.read_record(pidfile)
        if record is None:
            return
        if detached.members(record):
            log.info(f"{colour}: stopping pid {record.pid} (SIGTERM to its group, up to {grace:.0f}s)")
        outcome = detached.terminate(record, grace)
        if outcome == "killed":
            log.info(f"{colour}: still running after {grace:.0f}s: killed its process group")
        pidfile.unlink(missing_ok=True)

    def run_once(self, release: Release, command: str, env: dict[str, str], timeout: float, *,
                 spec: ColourSpec | None = None,
                 echo: Callable[[str], None] | None = None) -> tuple[int, str]:
        release_dir = self._release_dir(release.image)
        if not self.has(release):
            raise ConfigError(f"release {release.short} is not built in {self.builds}")
        base = spec.env if spec is not None else self.config.platform.env
        with tempfile.NamedTemporaryFile(prefix="bgci-one-off-") as out:
            proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=release_dir / "app",
                                    env=self._env(release_dir, base, env), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            done = threading.Event()
            pump = threading.Thread(target=lambda: _pump(out.name, echo, done), daemon=True) \
                if echo else None
            if pump is not None:
                pump.start()
            note = ""
            try:
                code = proc.wait(timeout=timeout or None)
            except BaseException as exc:  # past its time, or bgci interrupted: end it too
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole one-off, children included
                proc.wait()
                if not isinstance(exc, subprocess.TimeoutExpired):
                    raise
                code, note = 124, f"\n(timed out after {timeout:.0f}s)"
            finally:
                done.set()
                if pump is not None:
                    pump.join(5)
            out.seek(0)
            return code, out.read().decode("utf-8", "replace") + note

    def output(self, colour: Colour, *, tail: int | None, since: float | None,
               follow: bool) -> Iterator[str]:
        if since is not None:
            raise ConfigError("--since: the process platform keeps the colours' output without a "
                              "time on each line", "use --tail N (and -f to follow)")
        record = detached.read_record(self._dir(colour) / "process.json")
        yield from detached.follow(
            self._dir(colour) / "output.log", tail=tail,
            keep_going=lambda: follow and record is not None and detached.alive(record))

    def built(self, release: Release) -> float | None:
        info = ReleaseInfo.load(self._release_dir(release.image))
        return info.built_at if info is not None and self.has(release) else None

    def releases(self) -> list[Release]:
        found = []
        for directory in sorted(self.builds.glob("*/")) if self.builds.is_dir() else []:
            info = ReleaseInfo.load(directory)
            if info is not None:
                found.append(Release(image=info.id, digest=info.digest))
        return found

    def remove(self, release: Release) -> None:
        where = self._release_dir(release.image)
        if where.parent.resolve() == self.builds.resolve() and where.is_dir():
            shutil.rmtree(where)

    def destroy(self, dry_run: bool) -> list[str]:
        done = []
        for colour in COLOURS:
            record = detached.read_record(self._dir(colour) / "process.json")
            if record is not None and detached.alive(record):
                done.append(f"{colour}'s process group (pid {record.pid})")
                if not dry_run:
                    detached.terminate(record, 1.0)
        for directory in (self.root / "colours", self.builds):
            if directory.is_dir():
                count = len(list(directory.iterdir()))
                done.append(f"{directory}/ ({count} entr{'y' if count == 1 else 'ies'})")
                if not dry_run:
                    shutil.rmtree(directory)
        return done

    def logs(self, colour: Colour, lines: int = 40) -> str:
        return detached.tail(self._dir(colour) / "output.log", lines)

    def output_after(self, colour: Colour, cursor: str) -> tuple[str, str]:
        """What the colour wrote to its output.log after ``cursor`` (``inode:offset``; another
        inode: the colour was started again, its new log is read from its start)."""
        try:
            with (self._dir(colour) / "output.log").open("rb") as handle:
                stat = os.fstat(handle.fileno())
                inode, _, offset = cursor.partition(":")
                start = int(offset) if inode == str(stat.st_ino) and offset.isdigit() else 0
                if not cursor or start > stat.st_size:
                    start = stat.st_size if not cursor else 0
                handle.seek(start)
                data = handle.read(OUTPUT_CHUNK)
        except OSError:
            return "", cursor
        data = data[: data.rfind(b"\n") + 1]  # a line being written waits for the next look
        return data.decode("utf-8", "replace"), f"{stat.st_ino}:{start + len(data)}"

    def failure(self, colour: Colour) -> str:
        record = detached.read_record(self._dir(colour) / "process.json")
        if record is None:
            return f"{colour} has no process"
        if detached.alive(record):
            return ""
        code = detached.exit_code(record)
        how = f"exited with code {code}" if code is not None and code >= 0 else (
            f"was killed by signal {-code}" if code is not None else "exited")
        output = detached.tail(self._dir(colour) / "output.log", 400)
        return crash.describe(f"{colour}'s process (pid {record.pid}) {how}", output,
                              FAILURE_LINES)


def _pump(path: str, echo: Callable[[str], None] | None, done: threading.Event) -> None:
    """Pass what a one-off writes to its output file to ``echo``, until ``done`` and read."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with open(path, "rb") as handle:
        while True:
            data = handle.read(65536)
            if data and echo is not None:
                echo(decoder.decode(data))
            elif not data:
                if done.is_set():
                    return
                time.sleep(0.1)
