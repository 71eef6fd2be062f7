"""The operator's tools beside the pipeline: commands a person runs around a deployment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bgci.cli.common import EPILOG

if TYPE_CHECKING:
    from bgci.app import Options


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
