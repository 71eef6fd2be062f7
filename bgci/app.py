"""The application service: run one stage as a command asked for it, and report it, always.

Between the CLI (which only parses) and the stages (which only deploy): load the configuration,
build the ``Deployment``, run the stage, map any error to its exit code and status, run
``hooks.on_failure``, mask secrets, write the reports, hand the outcome to the CI and the webhook,
and print the one line (or the JSON) a person or a script reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from bgci import __version__, registry
from bgci.ci import CI, detect_ci
from bgci.config import has_config, load_config
from bgci.deployment import Deployment, Identity
from bgci.errors import BgciError, ConfigError, InfraError, Interrupted
from bgci.health import observe
from bgci.hooks import run_on_failure
from bgci.lock import Lease
from bgci.log import Log, StderrLog, use_colour
from bgci.model import LEGACY_NAMES, StageResult, other
from bgci.notify import notify
from bgci.redact import Redactor, secret_values, secrets_in_command
from bgci.report import write_reports
from bgci.report.dotenv import env_values
from bgci.report.jsonfile import to_json
from bgci.settings import HOOK_NAMES, Config

Stage = Callable[[Deployment, StageResult], Any]
_RED, _RESET = "\x1b[31m", "\x1b[0m"
# an error about a config value starts with where it is: "bgci.toml:12: ..."
_FILE_LINE = re.compile(r"^([^\s:]+\.toml):(\d+): ")


@dataclass
class Options:
    """The global options of every command."""

    config: str | None = None
    reports: str | None = None
    as_json: bool = False
    debug: bool = False
    verbosity: int = 0
    overrides: tuple[str, ...] = field(default_factory=tuple)
    # the command line as bgci was started with it (global options first): what a fleet runs
    # again on each host
    argv: tuple[str, ...] = field(default_factory=tuple)


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Interrupted(f"interrupted by signal {signum}")


def run_stage(opts: Options, stage: str, body: Stage, lock_wait: float = 60.0) -> int:
    """Run one stage; always write its reports; return its exit code."""
    return run_stages(opts, [(stage, body)], lock_wait)


def run_stages(opts: Options, steps: list[tuple[str, Stage]], lock_wait: float = 60.0) -> int:
    """Run stages in order in one process, each with its own reports, until one fails; return
    the last exit code. Several stages share one deploy lock, taken by the first that needs it
    and held until the last is done (``bgci deploy``: no other pipeline gets in between)."""
    ci = detect_ci(os.environ)
    redactor = Redactor(os.environ)
    log = StderrLog(opts.verbosity, fold=ci.fold, redact=redactor.text,
                    annotate=lambda level, message: ci.annotate(level, message))
    config: Config | None = None
    deployment: Deployment | None = None
    code = 0
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for stage, body in steps:
            result = StageResult(stage=stage, app=config.app if config else "")
            try:
                if config is None:
                    config = load_config(opts.config, overrides=opts.overrides)
                    if opts.reports:  # where reports go is never part of a release (process)
                        config.reports.dir = str(Path(opts.reports).resolve())
                    result.app = config.app
                    redactor.add(config_secrets(config, redactor.extra_names))
                    writable(Path(opts.reports or config.reports.dir))
                if config.platform.fleet:
                    _fleet_allows(config, stage, len(steps))
                if config.platform.fleet and stage != "build":
                    _on_fleet(opts, config, stage, log, result,
                              Identity(ci.holder(), ci.job_url()), lock_wait)
                else:
                    if deployment is None:
                        deployment = Deployment(config, log, Identity(ci.holder(), ci.job_url()),
                                                lock_wait, lease=Lease() if len(steps) > 1 else None)
                    deployment.found = deployment.seen = None
                    body(deployment, result)
            except BgciError as exc:
                _fail(result, exc, str(exc))
            except KeyboardInterrupt:
                _fail(result, Interrupted("interrupted"), "interrupted")
            except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
                _fail(result, InfraError(""),
                      f"unexpected {type(exc).__name__}: {exc} (a bgci bug? rerun with --debug)")
                if opts.debug:
                    traceback.print_exc()
            if deployment is not None:
                _look_at_live(deployment, result)
                if result.exit_code:
                    with contextlib.suppress(KeyboardInterrupt, Interrupted):  # ends the hook only
                        run_on_failure(deployment, result)
            result.finished = time.time()
            _redact(result, redactor)
            _publish(opts, config, result, ci, log)
            code = result.exit_code
            if code:
                break
    finally:
        signal.signal(signal.SIGTERM, previous)
        if deployment is not None:
            # closing a dead connection must not hide the real outcome
            with contextlib.suppress(Exception):
                deployment.close()
    return code


def _fleet_allows(config: Config, stage: str, steps: int) -> None:
    """What a fleet cannot do: ``bgci deploy`` in one process, a build the hosts cannot pull."""
    if steps > 1:
        raise ConfigError(
            "bgci deploy runs one host's whole pipeline in one process; on a fleet "
            "(platform.fleet) run the stages one by one",
            "bgci build, then bgci deploy-green, bgci verify, bgci switch: each runs on every host")
    if stage == "build" and not config.build.push:
        raise ConfigError(
            f"{config.origin('platform.fleet')}: a fleet's hosts pull each release from a "
            "registry, and build.push is false",
            "set build.push = true and build.image to a repository the hosts can pull from "
            "(docs/registry.md)")


def _on_fleet(opts: Options, config: Config, stage: str, log: Log, result: StageResult,
              who: Identity, lock_wait: float) -> None:
    """``stage`` on every host of ``platform.fleet`` (bgci.fleet), the fleet lock on the first."""
    from bgci import docker_engine
    from bgci.fleet import Fleet, command_at, fleet_lock_command, label, run_stage
    from bgci.lock import deploy_lock, new_lock
    from bgci.state.docker import DockerStore

    if not opts.argv:
        raise ConfigError(f"bgci {stage} on a fleet must be run from the command line")
    first = config.platform.fleet[0]

    @contextlib.contextmanager
    def fleet_store() -> Iterator[DockerStore]:
        client = docker_engine.connect_to(first)
        try:
            yield DockerStore(client, f"{config.app}-fleet")
        finally:
            client.close()

    @contextlib.contextmanager
    def locked() -> Iterator[None]:
        with fleet_store() as store, deploy_lock(store, new_lock(who.holder, who.job_url),
                                                 ttl=config.lock.ttl, wait=lock_wait,
                                                 say=log.info):
            yield

    fleet = Fleet(list(config.platform.fleet),
                  Path(opts.reports or config.reports.dir).resolve(), log)
    command = opts.argv[command_at(opts.argv):]
    if stage == "deploy-green" and not any(w.split("=")[0] == "--image" for w in command):
        # the last build is recorded in the fleet's reports dir, not in each host's
        image = image_to_deploy(opts, config, os.environ.get("BGCI_IMAGE"))
        fleet.environ = {**fleet.environ, "BGCI_IMAGE": image}
    log.info(f"{stage} on {len(fleet.hosts)} hosts in parallel: "
             + ", ".join(config.platform.fleet))
    run_stage(fleet, stage, opts.argv, result, docker_engine.why_unreachable, locked)
    if stage == "lock":  # `lock status|release`: the fleet's own lock as well as each host's
        with fleet_store() as store:
            fleet_lock_command(store, label(first), "release" in command[1:2], result, log)


Tool = Callable[[Deployment, Callable[[str], None]], int]


def run_tool(opts: Options, name: str, body: Tool) -> int:
    """Run one of the operator's commands that read or run but deploy nothing (``logs``,
    ``exec``, ``config``): no lock, no reports, no hooks; what it prints goes to stdout with
    secrets masked; a bgci error is one line on stderr and its exit code."""
    ci = detect_ci(os.environ)
    redactor = Redactor(os.environ)
    log = StderrLog(opts.verbosity, fold=ci.fold, redact=redactor.text,
                    annotate=lambda level, message: ci.annotate(level, message))
    out = _MaskedLines(redactor)
    deployment: Deployment | None = None
    try:
        config = load_config(opts.config, overrides=opts.overrides)
        redactor.add(config_secrets(config, redactor.extra_names))
        if config.platform.fleet and name != "config":
            raise ConfigError(
                f"bgci {name} acts on one host, and platform.fleet names "
                f"{len(config.platform.fleet)}",
                f"name the host: DOCKER_HOST={config.platform.fleet[0]} bgci --set "
                f"'platform.fleet=[]' {name} ...")
        deployment = Deployment(config, log, Identity(ci.holder(), ci.job_url()))
        return body(deployment, out.write)
    except BgciError as exc:
        out.flush()
        line = f"bgci {name}: {exc.status} (exit {exc.exit_code}): {redactor.text(str(exc))}"
        _say(f"{_RED}{line}{_RESET}" if use_colour() else line, err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        out.flush()
        if deployment is not None:
            with contextlib.suppress(Exception):
                deployment.close()


class _MaskedLines:
    """Text to stdout a line at a time, each line with the secrets masked (a secret split over
    two chunks of a stream is still one line)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.pending = ""

    def write(self, text: str) -> None:
        self.pending += text
        if "\n" in self.pending:
            done, _, self.pending = self.pending.rpartition("\n")
            sys.stdout.write(self.redactor.text(done) + "\n")
            sys.stdout.flush()

    def flush(self) -> None:
        if self.pending:
            sys.stdout.write(self.redactor.text(self.pending))
            sys.stdout.flush()
            self.pending = ""


def config_secrets(config: Config, extra_names: set[str]) -> set[str]:
    """Secret-looking values the configuration holds: ``platform.env`` entries with a secret
    name, and ``NAME=value`` / ``--password value`` words in the hooks' commands."""
    found = secret_values(config.platform.env, extra_names)
    named = registry.ROUTERS[config.router.kind].secret_vars(config)  # e.g. a TSIG key's
    found |= secret_values({n: os.environ.get(n, "") for n in named}, named)
    for name in (*HOOK_NAMES, "on_failure"):
        found |= secrets_in_command(getattr(config.hooks, name).command, extra_names)
    return found | secrets_in_command(config.build.test_command, extra_names)


def writable(reports: Path) -> None:
    """The reports dir exists and takes a file, before the stage changes anything (ConfigError,
    exit 2, otherwise: a stage whose report cannot be written must not change the target)."""
    try:
        reports.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=reports, prefix=".bgci-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write reports to {reports}: {exc}",
                          "give --reports / reports.dir a directory this user can write; nothing "
                          "was changed") from exc


def _look_at_live(d: Deployment, result: StageResult) -> None:
    """A stage that looked at live traffic as it started but did not reach its own last look
    (it failed): look now, so that its report says who answers, not what was meant to."""
    if d.found is None or d.seen is not None:
        return
    with contextlib.suppress(Exception):
        d.seen = observe(d.router.live_url, d.config.health, reach=d.router.reach)
        result.live_colour, result.observed = d.seen.colour, True
        if d.seen.colour is not None:
            result.idle_colour = other(d.seen.colour)


def _fail(result: StageResult, error: BgciError, message: str) -> None:
    result.exit_code, result.status, result.message = error.exit_code, error.status, message


def _redact(result: StageResult, redactor: Redactor) -> None:
    """Mask secret values in everything the reports and stdout will show."""
    result.message = redactor.text(result.message)
    result.extra = redactor.deep(result.extra)
    for check in result.checks:
        check.name, check.message = redactor.text(check.name), redactor.text(check.message)
        check.output = redactor.text(check.output)


def properties(result: StageResult, ci: CI) -> dict[str, str]:
    """The JUnit suite properties: app, the stage's facts, bgci's version and the CI job URL
    (the facts also under their bgci 0.1 spellings)."""
    props = {"app": result.app, "color": result.colour or "", "image": result.image,
             "digest": result.digest, "bgci_version": __version__, "ci_job_url": ci.job_url(),
             "live_color": result.live_colour or ""}
    props.update({old: props[new] for old, new in LEGACY_NAMES.items() if new in props})
    return props


def _publish(opts: Options, config: Config | None, result: StageResult, ci: CI, log: Log) -> None:
    reports = Path(opts.reports or (config.reports.dir if config else "bgci-reports"))
    # a read-only look where there is no project at all leaves nothing behind
    if config is not None or result.stage != "status" or has_config(opts.config, Path.cwd()):
        try:
            written = write_reports(result, reports, properties(result, ci))
            ci.publish(result, env_values(result), written[0])
        except OSError as exc:
            _say(f"bgci: could not write reports to {reports}: {exc}", err=True)
    if config is not None:
        notify(config.notify.url, result, ci.job_url(), log)
    if result.exit_code != 0:
        line = f"bgci {result.stage}: {result.status} (exit {result.exit_code}): {result.message}"
        _say(f"{_RED}{line}{_RESET}" if use_colour() else line, err=True)
        where = _FILE_LINE.match(result.message)
        ci.annotate("error", f"bgci {result.stage} {result.status} (exit {result.exit_code}): "
                    f"{result.message}", where.group(1) if where else "",
                    int(where.group(2)) if where else 0)
    if opts.as_json:
        _say(to_json(result).rstrip("\n"))
    elif result.display:
        _say(result.display)
    elif result.exit_code == 0:
        _say(f"bgci {result.stage}: {result.message or _summary(result)}")


def _summary(result: StageResult) -> str:
    parts = [f"passed ({len(result.checks)} checks)"]
    if result.live_colour:
        parts.append(f"live: {result.live_colour}")
    if result.image:
        parts.append(f"image: {result.image}")
    return "; ".join(parts)


def _say(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def image_to_deploy(opts: Options, config: Config, image: str | None) -> str:
    """``--image`` (or ``BGCI_IMAGE``), else what the last successful ``bgci build`` of this app
    recorded in the reports dir. ConfigError (exit 2) for an empty ``--image ""`` (an empty CI
    variable must never mean "the last build"), and when there is no build of this app."""
    if image is not None:
        if not image.strip():
            raise ConfigError("--image is empty (an empty CI variable?): nothing to deploy",
                              "pass --image REF, or leave --image out to deploy the last build")
        return image
    path = Path(opts.reports or config.reports.dir) / "build.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    built_for = str(data.get("app") or "")
    if built_for and built_for != config.app:
        raise ConfigError(f"{path} records a build of app {built_for!r}, not of {config.app!r}: "
                          "reports dirs shared by two apps would deploy one as the other",
                          "pass --image REF, or give each app its own --reports dir")
    image = str(data.get("image") or "")
    if data.get("exit_code") == 0 and image:
        return image
    raise ConfigError("no image to deploy: pass --image REF, set BGCI_IMAGE, or run `bgci build` "
                      f"first (it records the image in {path})")
