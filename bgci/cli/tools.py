"""The operator's commands around the pipeline: write a first config, read the app's output, run a
one-off, list the releases, lift a quarantine, see the resolved configuration, remove everything."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bgci.cli.common import EPILOG, lock_wait_option, run
from bgci.model import epoch

if TYPE_CHECKING:
    from collections.abc import Callable

    from bgci.app import Options
    from bgci.deployment import Deployment

COLOUR_CHOICE = click.Choice(["live", "idle", "blue", "green"])
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(value: str | None) -> float | None:
    """``--since``: a span back from now (``90s``, ``10m``, ``2h``, ``1d``) or a UTC time
    (``2026-11-30T07:00:00``), as epoch seconds."""
    if not value:
        return None
    span = _SPAN.match(value.strip())
    if span:
        return time.time() - float(span.group(1)) * _UNITS[span.group(2)]
    at = epoch(value.strip())
    if not at:
        raise click.BadParameter(f"{value!r}: expected a span like 10m, 2h, 1d or a UTC time "
                                 "like 2026-11-30T07:00:00", param_hint="--since")
    return at


def tool(opts: Options, name: str, body: Callable[[Deployment, Callable[[str], None]], int]) -> None:
    from bgci.app import run_tool

    sys.exit(run_tool(opts, name, body))


@click.command(epilog=EPILOG)
@click.argument("colour", type=COLOUR_CHOICE, default="live")
@click.option("-f", "--follow", is_flag=True, help="Keep printing what the colour writes next.")
@click.option("--since", metavar="SPAN|TIME",
              help="Only output after this: 10m, 2h, 1d, or 2026-11-30T07:00:00 (UTC). Not on "
                   "the process platform, whose log keeps no time per line.")
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines.")
@click.pass_obj
def logs(opts: Options, colour: str, follow: bool, since: str | None, tail: int | None) -> None:
    """The colour's own output (default: the live one): container or service logs, or the
    process's log file. Ctrl-C ends -f."""
    from bgci.stages.toolbox import logs as body

    after = since_time(since)
    tool(opts, "logs", lambda d, write: body(d, colour, write, follow=follow, since=after,
                                             tail=tail))


@click.command("exec", epilog=EPILOG, context_settings={"ignore_unknown_options": True})
@click.argument("colour", type=COLOUR_CHOICE)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=0.0, metavar="SECONDS",
              help="Kill the command after this long (default: no limit).")
@click.pass_obj
def exec_(opts: Options, colour: str, command: tuple[str, ...], timeout: float) -> None:
    """Run COMMAND once in a fresh instance of the colour's release (same image or virtualenv,
    the colour's environment, the app's network), e.g. `bgci exec live -- python manage.py
    showmigrations`. Exits with the command's exit code."""
    from bgci.stages.toolbox import exec_one_off

    argv = list(command[1:] if command and command[0] == "--" else command)
    tool(opts, "exec", lambda d, write: exec_one_off(d, colour, argv, write, timeout=timeout))


@click.command(epilog=EPILOG)
@click.pass_obj
def releases(opts: Options) -> None:
    """Every release the app ran: version, digest, built, deployed and live times, verified or
    quarantined (and why), which colour runs it now. Read-only."""
    from bgci.stages.releases import releases as stage

    run(opts, "releases", stage)


@click.group()
def quarantine() -> None:
    """The digests a rollback quarantined: list them, or lift one."""


@quarantine.command("list", epilog=EPILOG)
@click.pass_obj
def quarantine_list(opts: Options) -> None:
    """Each quarantined release, with why it was quarantined. Read-only."""
    from bgci.stages.quarantine import quarantine_list as stage

    run(opts, "quarantine", stage)


@quarantine.command("clear", epilog=EPILOG)
@click.argument("release")
@click.option("--reason", required=True, help="Why it is safe again (goes into the history).")
@lock_wait_option
@click.pass_obj
def quarantine_clear(opts: Options, release: str, reason: str, lock_wait: float) -> None:
    """Lift the quarantine of RELEASE (a digest, its first 7+ characters, or a version): it may
    be deployed, verified and switched to again without --force."""
    from bgci.stages.quarantine import quarantine_clear as stage

    run(opts, "quarantine", lambda d, r: stage(d, r, release, reason), lock_wait)


@click.command(epilog=EPILOG)
@click.option("--images", is_flag=True,
              help="Remove the images (releases) bgci built for the app too.")
@click.option("--yes", is_flag=True, help="Really remove it (without: list what would go).")
@lock_wait_option
@click.pass_obj
def destroy(opts: Options, images: bool, yes: bool, lock_wait: float) -> None:
    """Remove everything bgci made for the app on the target: router, colours, networks, release
    directories, state and lock (and with --images the images). Live traffic ends for good."""
    from bgci.stages.destroy import destroy as stage

    run(opts, "destroy", lambda d, r: stage(d, r, images=images, yes=yes), lock_wait)


@click.command("config", epilog=EPILOG)
@click.pass_obj
def config_(opts: Options) -> None:
    """The resolved configuration, each value with its origin (the file and line, a BGCI_*
    variable, --set, or the default), secrets masked. With --json, as JSON."""
    from bgci.config_report import show

    tool(opts, "config", lambda d, write: show(d.config, write, as_json=opts.as_json))


@click.command(epilog=EPILOG)
@click.pass_obj
def init(opts: Options) -> None:
    """Write a commented bgci.toml for the Django, Flask or FastAPI app here.

    From requirements.txt or pyproject.toml and the app's sources: the framework, the module it
    serves, its health route (for Django a health.host from ALLOWED_HOSTS), the platform (docker
    when a Dockerfile is here, else process, with its gunicorn or uvicorn command) and the smoke
    suite; a .dockerignore too when there is none. Prints what it found and what to check.
    Refuses (exit 4) when there is a config: bgci.toml, [tool.bgci] in pyproject.toml, or the
    --config file (written instead of bgci.toml, for the app in that file's directory). Needs no
    engine; writes no reports."""
    from bgci import __version__, scaffold
    from bgci.errors import BgciError, ConfigError, Refused

    cwd = Path.cwd()
    try:
        if opts.overrides:
            raise ConfigError("bgci init takes no --set: edit the file it writes instead")
        path = scaffold.config_path(cwd, opts.config)
        project = scaffold.detect(path.parent)
        files = [(path, scaffold.render_config(project, __version__))]
        if not project.has_dockerignore:
            files.append((path.parent / ".dockerignore",
                          scaffold.render_dockerignore(project, path.name)))
        for target, text in files:
            try:
                with target.open("x", encoding="utf-8") as out:  # "x": never over a file
                    out.write(text)
            except FileExistsError as exc:
                raise Refused(f"{target} appeared meanwhile: not overwritten") from exc
            except OSError as exc:
                raise ConfigError(f"cannot write {target}: {exc}") from exc
    except BgciError as exc:
        click.echo(f"bgci init: {exc.status} (exit {exc.exit_code}): {exc}", err=True)
        sys.exit(exc.exit_code)
    written = [str(t.relative_to(cwd)) if t.is_relative_to(cwd) else str(t) for t, _ in files]
    if opts.as_json:
        click.echo(json.dumps({"written": written, **project.summary()}, indent=2))
        return
    click.echo(f"bgci init: wrote {' and '.join(written)}")
    for line in scaffold.describe(project):
        click.echo(f"  {line}")
