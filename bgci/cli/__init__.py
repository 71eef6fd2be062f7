"""The click CLI: parses options and hands each command to ``bgci.app``, which runs the stage,
writes its reports and returns its exit code.

Heavy imports (docker, requests, junit-xml) happen inside commands so `bgci --help` stays fast.
"""

from __future__ import annotations

import sys

import click

from bgci import __version__
from bgci.cli import pipeline, tools
from bgci.cli.common import CONTEXT, EPILOG
from bgci.command_line import GLOBAL_FLAGS, GLOBAL_VALUES, command_index


class _InOrder(click.Group):
    """Lists the commands in the order a pipeline runs them, then the operator's tools."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_InOrder, context_settings=CONTEXT, epilog=EPILOG)
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
    build -> deploy-green -> verify -> switch (and rollback, retire, status, down, up);
    around them, the operator's commands (releases, logs, exec, quarantine, config, destroy).
    Every option also reads BGCI_<NAME> from the environment, e.g. BGCI_CONFIG.
    """
    from bgci.app import Options

    ctx.obj = Options(config, reports, as_json, debug, verbose - quiet, overrides,
                      argv=tuple(_COMMAND_LINE))


for _command in (tools.init, pipeline.build, pipeline.deploy_green, pipeline.verify, pipeline.switch,
                 pipeline.rollback, pipeline.retire, pipeline.deploy, pipeline.status,
                 tools.releases, tools.logs, tools.exec_, tools.quarantine, tools.config_,
                 pipeline.down, pipeline.up, tools.destroy, pipeline.router, pipeline.lock):
    cli.add_command(_command)


# commands whose words after their first argument are someone else's command line
_PASS_THROUGH = ("exec",)


def hoist_globals(args: list[str]) -> list[str]:
    """``args`` with the global options that follow the command moved before it, where click
    reads them: ``bgci status --json`` is ``bgci --json status`` (as README and SPEC write both).
    Nothing after a ``--`` is touched, nor the command line ``bgci exec COLOUR`` runs."""
    command = command_index(args)
    if command is None:
        return args
    moved: list[str] = []
    rest: list[str] = []
    i = command + 1
    positional = 0
    while i < len(args):
        word = args[i]
        if word == "--" or (args[command] in _PASS_THROUGH and positional >= 1):
            rest += args[i:]  # the user's own command line (`bgci exec live python -v`)
            break
        if not word.startswith("-"):
            positional += 1
        if word in GLOBAL_FLAGS or (len(word) > 1 and word[0] == "-" and word[1] != "-"
                                     and set(word[1:]) <= {"v", "q"}):
            moved.append(word)
        elif word in GLOBAL_VALUES and i + 1 < len(args):
            moved += args[i:i + 2]
            i += 1
        elif word.split("=", 1)[0] in GLOBAL_VALUES and "=" in word:
            moved.append(word)
        else:
            rest.append(word)
        i += 1
    return [*args[:command], *moved, args[command], *rest]


# the command line of this process, global options first (set by main: what a fleet runs again
# on each host; empty when bgci is called as a library)
_COMMAND_LINE: list[str] = []


def main() -> None:
    _COMMAND_LINE[:] = hoist_globals(sys.argv[1:])
    cli(args=list(_COMMAND_LINE), prog_name="bgci")
