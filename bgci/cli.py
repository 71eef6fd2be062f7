"""The click CLI: parses options, runs one stage, writes its reports, maps errors to exit codes.

Heavy imports (docker, requests, junit-xml) happen inside commands so `bgci --help` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from bgci import __version__
from bgci.errors import EXIT_CODES, BgciError, ConfigError, Interrupted

if TYPE_CHECKING:
    from bgci.config import Config
    from bgci.deployment import Deployment
    from bgci.model import StageResult

# "\b" keeps click from re-wrapping the table
EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
Stage = Callable[["Deployment", "StageResult"], Any]


@dataclass
class Options:
    config: str | None = None
    reports: str | None = None
    as_json: bool = False
    debug: bool = False
    verbosity: int = 0
    overrides: tuple[str, ...] = field(default_factory=tuple)


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Interrupted(f"interrupted by signal {signum}")


@click.group(context_settings=CONTEXT, epilog=EPILOG)
@click.option("--config", envvar="BGCI_CONFIG", metavar="PATH",
              help="Config file (default: bgci.toml, else [tool.bgci] in pyproject.toml).")
@click.option("--reports", envvar="BGCI_REPORTS", metavar="DIR",
              help="Reports directory (default: reports.dir, i.e. bgci-reports).")
@click.option("--json", "as_json", is_flag=True, envvar="BGCI_JSON",
              help="Print the stage result as JSON on stdout.")
@click.option("--debug", is_flag=True, envvar="BGCI_DEBUG", help="Show tracebacks.")
@click.option("-v", "--verbose", count=True, help="More output (-v shows build and probe lines).")
@click.option("-q", "--quiet", count=True, help="Less output.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config key, e.g. --set router.listen=0.0.0.0:80 (repeatable).")
@click.version_option(__version__, prog_name="bgci")
@click.pass_context
def cli(ctx: click.Context, config: str | None, reports: str | None, as_json: bool, debug: bool,
        verbose: int, quiet: int, overrides: tuple[str, ...]) -> None:
    """bgci: blue-green, zero-downtime deployment of Python web apps from CI.

    Each stage is one command; run them in order, in one job or in separate jobs:
    build -> deploy-green -> verify -> switch (and rollback, retire, status).
    Every option also reads BGCI_<NAME> from the environment, e.g. BGCI_CONFIG.
    """
    ctx.obj = Options(config, reports, as_json, debug, verbose - quiet, overrides)


def lock_wait_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--lock-wait", type=float, default=60.0, show_default=True,
                        envvar="BGCI_LOCK_WAIT", metavar="SECONDS",
                        help="How long to wait for another pipeline's deploy lock.")(f)


def run_stage(opts: Options, stage: str, body: Stage, lock_wait: float = 60.0) -> int:
    """Run one stage; always write its reports; return its exit code."""
    from bgci.ci import detect_ci
    from bgci.log import StderrLog
    from bgci.model import StageResult
    from bgci.redact import Redactor

    ci = detect_ci(os.environ)
    redactor = Redactor(os.environ)
    log = StderrLog(opts.verbosity, fold=ci.fold, redact=redactor.text)
    result = StageResult(stage=stage, app="")
    config: Config | None = None
    deployment: Deployment | None = None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        config = _load(opts)
        result.app = config.app
        from bgci.deployment import Deployment, Identity

        deployment = Deployment(config, log, Identity(ci.holder(), ci.job_url()), lock_wait)
        body(deployment, result)
    except BgciError as exc:
        _fail(result, exc.exit_code, str(exc))
    except KeyboardInterrupt:
        _fail(result, Interrupted.exit_code, "interrupted")
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
        _fail(result, 3, f"unexpected {type(exc).__name__}: {exc} (a bgci bug? rerun with --debug)")
        if opts.debug:
            traceback.print_exc()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if deployment is not None:
            if result.exit_code:
                _on_failure(deployment, result)
            # closing a dead connection must not hide the real outcome
            with contextlib.suppress(Exception):
                deployment.close()
    result.finished = time.time()
    _redact(result, redactor)
    _publish(opts, config, result, ci, log)
    return result.exit_code


def _on_failure(deployment: Deployment, result: StageResult) -> None:
    """hooks.on_failure; an interrupt while it runs ends it, never the report."""
    from bgci.hooks import run_on_failure

    with contextlib.suppress(KeyboardInterrupt, Interrupted):
        run_on_failure(deployment, result)


def _redact(result: StageResult, redactor: Any) -> None:
    """Mask secret values in everything the reports and stdout will show."""
    result.message = redactor.text(result.message)
    result.extra = redactor.deep(result.extra)
    for check in result.checks:
        check.name, check.message = redactor.text(check.name), redactor.text(check.message)
        check.output = redactor.text(check.output)


def _load(opts: Options) -> Config:
    from bgci.config import load_config

    return load_config(opts.config, overrides=opts.overrides)


def _fail(result: StageResult, code: int, message: str) -> None:
    result.exit_code = code
    result.status = {1: "failed", 4: "refused"}.get(code, "error")  # type: ignore[assignment]
    result.message = message


def _publish(opts: Options, config: Config | None, result: StageResult, ci: Any, log: Any) -> None:
    from bgci.notify import notify
    from bgci.report import write_reports
    from bgci.report.dotenv import env_values

    reports = Path(opts.reports or (config.reports.dir if config else "bgci-reports"))
    properties = {
        "app": result.app, "colour": result.colour or "", "image": result.image,
        "digest": result.digest, "bgci_version": __version__, "ci_job_url": ci.job_url(),
        "live_colour": result.live_colour or "",
    }
    try:
        written = write_reports(result, reports, properties)
        ci.publish(result, env_values(result), written[0])
    except OSError as exc:
        click.echo(f"bgci: could not write reports to {reports}: {exc}", err=True)
    if config is not None:
        notify(config.notify.url, result, ci.job_url(), log)
    if result.exit_code != 0:
        click.echo(f"bgci {result.stage}: {result.status} (exit {result.exit_code}): {result.message}",
                   err=True)
    if opts.as_json:
        from bgci.report.jsonfile import to_json

        click.echo(to_json(result))
    elif result.exit_code == 0:
        if result.stage == "status" and "status" in result.extra:
            from bgci.stages.status import render

            click.echo(render(result.extra["status"]))
        else:
            click.echo(f"bgci {result.stage}: {result.message or _summary(result)}")


def _summary(result: StageResult) -> str:
    parts = [f"passed ({len(result.checks)} checks)"]
    if result.live_colour:
        parts.append(f"live: {result.live_colour}")
    if result.image:
        parts.append(f"image: {result.image}")
    return "; ".join(parts)


def _exit(code: int) -> NoReturn:
    sys.exit(code)


@cli.command(epilog=EPILOG)
@click.option("--tag", envvar="BGCI_TAG", help="Image tag (default: the git SHA).")
@click.pass_obj
def build(opts: Options, tag: str | None) -> None:
    """Run build.test_command, then build the image tagged with the git SHA."""
    from bgci.stages.build import build as stage

    _exit(run_stage(opts, "build", lambda d, r: stage(d, r, tag)))


def _image_from_reports(opts: Options, config: Config) -> str:
    path = Path(opts.reports or config.reports.dir) / "build.json"
    try:
        data = json.loads(path.read_text())
        image = str(data.get("image") or "")
        if data.get("exit_code") == 0 and image:
            return image
    except (OSError, ValueError):
        pass
    raise ConfigError("no image to deploy: pass --image REF, set BGCI_IMAGE, or run `bgci build` "
                      f"first (it records the image in {path})")


@cli.command("deploy-green", epilog=EPILOG)
@click.option("--image", envvar="BGCI_IMAGE", metavar="REF",
              help="Image to deploy (default: BGCI_IMAGE, else the last build in the reports dir).")
@click.option("--allow-quarantined", is_flag=True, envvar="BGCI_ALLOW_QUARANTINED",
              help="Deploy even a digest that a rollback quarantined.")
@lock_wait_option
@click.pass_obj
def deploy_green(opts: Options, image: str | None, allow_quarantined: bool,
                 lock_wait: float) -> None:
    """Start the new version on the idle colour, wait until healthy, expose it on the preview."""
    from bgci.stages.deploy_green import deploy_green as stage

    def body(d: Deployment, r: StageResult) -> None:
        stage(d, r, image or _image_from_reports(opts, d.config), allow_quarantined)

    _exit(run_stage(opts, "deploy-green", body, lock_wait))


@cli.command(epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def verify(opts: Options, lock_wait: float) -> None:
    """Health checks, the smoke suite and the latency budget against the preview address."""
    from bgci.stages.verify import verify as stage

    _exit(run_stage(opts, "verify", stage, lock_wait))


@cli.command(epilog=EPILOG)
@click.option("--force", is_flag=True, envvar="BGCI_FORCE",
              help="Switch even if the idle colour is not verified.")
@click.option("--dry-run", is_flag=True, envvar="BGCI_DRY_RUN",
              help="Print what would change and change nothing.")
@lock_wait_option
@click.pass_obj
def switch(opts: Options, force: bool, dry_run: bool, lock_wait: float) -> None:
    """Atomically send live traffic to the verified idle colour; confirm, drain, bake."""
    from bgci.stages.switch import switch as stage

    _exit(run_stage(opts, "switch", lambda d, r: stage(d, r, force=force, dry_run=dry_run),
                    lock_wait))


@cli.command(epilog=EPILOG)
@click.option("--dry-run", is_flag=True, envvar="BGCI_DRY_RUN",
              help="Print what would change and change nothing.")
@lock_wait_option
@click.pass_obj
def rollback(opts: Options, dry_run: bool, lock_wait: float) -> None:
    """Send live traffic back to the previous colour and quarantine the rolled-back digest."""
    from bgci.stages.rollback import rollback as stage

    _exit(run_stage(opts, "rollback", lambda d, r: stage(d, r, dry_run=dry_run), lock_wait))


@cli.command(epilog=EPILOG)
@click.option("--history", "entries", type=int, default=10, show_default=True,
              envvar="BGCI_HISTORY", help="History entries to show.")
@click.pass_obj
def status(opts: Options, entries: int) -> None:
    """Live colour, what each colour runs, health, verified flags, lock and history."""
    from bgci.stages.status import status as stage

    _exit(run_stage(opts, "status", lambda d, r: stage(d, r, history=entries)))


@cli.command(epilog=EPILOG)
@click.option("--force", is_flag=True, envvar="BGCI_FORCE",
              help="Retire even before switch.retire_after, or the last rollback target.")
@lock_wait_option
@click.pass_obj
def retire(opts: Options, force: bool, lock_wait: float) -> None:
    """Stop the idle colour once it has been idle longer than switch.retire_after."""
    from bgci.stages.retire import retire as stage

    _exit(run_stage(opts, "retire", lambda d, r: stage(d, r, force=force), lock_wait))


@cli.command(epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def down(opts: Options, lock_wait: float) -> None:
    """Stop both colours and the managed router (the app goes offline; state and releases stay)."""
    from bgci.stages.down import down as stage

    _exit(run_stage(opts, "down", stage, lock_wait))


@cli.command(epilog=EPILOG)
@click.option("--tag", envvar="BGCI_TAG", help="Image tag (default: the git SHA).")
@lock_wait_option
@click.pass_obj
def deploy(opts: Options, tag: str | None, lock_wait: float) -> None:
    """build -> deploy-green -> verify -> switch in one process, one report per stage."""
    from bgci.stages.build import build as build_stage
    from bgci.stages.deploy_green import deploy_green as green_stage
    from bgci.stages.switch import switch as switch_stage
    from bgci.stages.verify import verify as verify_stage

    built: list[str] = []

    def do_build(d: Deployment, r: StageResult) -> None:
        build_stage(d, r, tag)
        built.append(r.image)

    steps: list[tuple[str, Stage]] = [
        ("build", do_build),
        ("deploy-green", lambda d, r: green_stage(d, r, built[0])),
        ("verify", verify_stage),
        ("switch", switch_stage),
    ]
    for name, body in steps:
        code = run_stage(opts, name, body, lock_wait)
        if code != 0:
            _exit(code)
    _exit(0)


@cli.group()
def lock() -> None:
    """Inspect or release the deploy lock (for operators)."""


@lock.command("status")
@click.pass_obj
def lock_status(opts: Options) -> None:
    """Show who holds the deploy lock."""
    def body(d: Deployment, r: StageResult) -> None:
        held = d.store.current_lock()
        r.extra["lock"] = held.to_dict() if held else None
        r.message = f"held by {held.describe()}" if held else "the deploy lock is free"

    _exit(run_stage(opts, "lock", body))


@lock.command("release")
@click.pass_obj
def lock_release(opts: Options) -> None:
    """Release the deploy lock whoever holds it (for a pipeline that died holding it)."""
    def body(d: Deployment, r: StageResult) -> None:
        held = d.store.current_lock()
        if held is None:
            r.message = "the deploy lock was already free"
            return
        d.store.unlock(held)
        r.message = f"released the deploy lock held by {held.describe()}"
        d.log.info(r.message)

    _exit(run_stage(opts, "lock", body))


def main() -> None:
    cli(prog_name="bgci")
