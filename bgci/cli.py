"""The click CLI: parses options and hands each command to ``bgci.app``, which runs the stage,
writes its reports and returns its exit code.

Heavy imports (docker, requests, junit-xml) happen inside commands so `bgci --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from bgci import __version__
from bgci.errors import EXIT_CODES

if TYPE_CHECKING:
    from bgci.app import Options, Stage
    from bgci.deployment import Deployment
    from bgci.model import StageResult

# "\b" keeps click from re-wrapping the table
EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
    build -> deploy-green -> verify -> switch (and rollback, retire, status, down, up).
    Every option also reads BGCI_<NAME> from the environment, e.g. BGCI_CONFIG.
    """
    from bgci.app import Options

    ctx.obj = Options(config, reports, as_json, debug, verbose - quiet, overrides)


def lock_wait_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--lock-wait", type=float, default=60.0, show_default=True,
                        envvar="BGCI_LOCK_WAIT", metavar="SECONDS",
                        help="How long to wait for another pipeline's deploy lock.")(f)


def run(opts: Options, stage: str, body: Stage, lock_wait: float = 60.0) -> NoReturn:
    """Run one stage through the application service and exit with its code."""
    from bgci.app import run_stage

    sys.exit(run_stage(opts, stage, body, lock_wait))


@cli.command(epilog=EPILOG)
@click.option("--tag", envvar="BGCI_TAG", help="Image tag (default: the git SHA).")
@click.pass_obj
def build(opts: Options, tag: str | None) -> None:
    """Run build.test_command, then build the image tagged with the git SHA."""
    from bgci.stages.build import build as stage

    run(opts, "build", lambda d, r: stage(d, r, tag))


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
    from bgci.app import image_to_deploy
    from bgci.stages.deploy_green import deploy_green as stage

    def body(d: Deployment, r: StageResult) -> None:
        stage(d, r, image_to_deploy(opts, d.config, image), allow_quarantined)

    run(opts, "deploy-green", body, lock_wait)


def digest_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--digest", envvar="BGCI_DIGEST", default="", metavar="DIGEST",
                        help="The release this pipeline deployed (default: BGCI_DIGEST, as "
                             "bgci.env passes it on): refuse if the idle colour runs another.")(f)


@cli.command(epilog=EPILOG)
@digest_option
@lock_wait_option
@click.pass_obj
def verify(opts: Options, digest: str, lock_wait: float) -> None:
    """Health checks, the smoke suite and the latency budget against the preview address."""
    from bgci.stages.verify import verify as stage

    run(opts, "verify", lambda d, r: stage(d, r, digest), lock_wait)


@cli.command(epilog=EPILOG)
@click.option("--force", is_flag=True, envvar="BGCI_FORCE",
              help="Switch even if the idle colour is not verified.")
@click.option("--dry-run", is_flag=True, envvar="BGCI_DRY_RUN",
              help="Print what would change and change nothing.")
@digest_option
@lock_wait_option
@click.pass_obj
def switch(opts: Options, force: bool, dry_run: bool, digest: str, lock_wait: float) -> None:
    """Atomically send live traffic to the verified idle colour; confirm, drain, bake."""
    from bgci.stages.switch import switch as stage

    run(opts, "switch", lambda d, r: stage(d, r, force=force, dry_run=dry_run, digest=digest),
        lock_wait)


@cli.command(epilog=EPILOG)
@click.option("--dry-run", is_flag=True, envvar="BGCI_DRY_RUN",
              help="Print what would change and change nothing.")
@lock_wait_option
@click.pass_obj
def rollback(opts: Options, dry_run: bool, lock_wait: float) -> None:
    """Send live traffic back to the previous colour and quarantine the rolled-back digest."""
    from bgci.stages.rollback import rollback as stage

    run(opts, "rollback", lambda d, r: stage(d, r, dry_run=dry_run), lock_wait)


@cli.command(epilog=EPILOG)
@click.option("--history", "entries", type=int, default=10, show_default=True,
              envvar="BGCI_HISTORY", help="History entries to show.")
@click.pass_obj
def status(opts: Options, entries: int) -> None:
    """Live colour, what each colour runs, health, verified flags, lock and history."""
    from bgci.stages.status import status as stage

    run(opts, "status", lambda d, r: stage(d, r, history=entries))


@cli.command(epilog=EPILOG)
@click.option("--force", is_flag=True, envvar="BGCI_FORCE",
              help="Retire even before switch.retire_after, or the last rollback target.")
@lock_wait_option
@click.pass_obj
def retire(opts: Options, force: bool, lock_wait: float) -> None:
    """Stop the idle colour once it has been idle longer than switch.retire_after."""
    from bgci.stages.retire import retire as stage

    run(opts, "retire", lambda d, r: stage(d, r, force=force), lock_wait)


@cli.command(epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def down(opts: Options, lock_wait: float) -> None:
    """Stop both colours and the managed router (the app goes offline; state and releases stay).
    Other stages refuse until `bgci up`."""
    from bgci.stages.down import down as stage

    run(opts, "down", stage, lock_wait)


@cli.command(epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def up(opts: Options, lock_wait: float) -> None:
    """The inverse of down: the live colour and the router as recorded, proven through the live
    address."""
    from bgci.stages.down import up as stage

    run(opts, "up", stage, lock_wait)


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
        built.extend((r.image, r.digest))

    steps: list[tuple[str, Stage]] = [
        ("build", do_build),
        ("deploy-green", lambda d, r: green_stage(d, r, built[0])),
        ("verify", lambda d, r: verify_stage(d, r, built[1])),
        ("switch", lambda d, r: switch_stage(d, r, digest=built[1])),
    ]
    from bgci.app import run_stages

    sys.exit(run_stages(opts, steps, lock_wait))


@cli.group()
def router() -> None:
    """Changes to the router that no stage makes on the side (they cut live traffic)."""


@router.command("reboot", epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def router_reboot(opts: Options, lock_wait: float) -> None:
    """Stop the router and start it as the config says: a new router.kind, router.image,
    router.listen / router.preview or router template. Live traffic is cut while it restarts
    (the report says for how long)."""
    from bgci.stages.router import reboot as stage

    run(opts, "router", stage, lock_wait)


@cli.group()
def lock() -> None:
    """Inspect or release the deploy lock (for operators)."""


@lock.command("status")
@click.pass_obj
def lock_status(opts: Options) -> None:
    """Show who holds the deploy lock."""
    from bgci.stages.lock import lock_status as stage

    run(opts, "lock", stage)


@lock.command("release")
@click.pass_obj
def lock_release(opts: Options) -> None:
    """Release the deploy lock whoever holds it (for a pipeline that died holding it)."""
    from bgci.stages.lock import lock_release as stage

    run(opts, "lock", stage)


# the group's options, which may also be written after the command (`bgci status --json`)
_GLOBAL_FLAGS = ("--json", "--debug", "--verbose", "--quiet")
_GLOBAL_VALUES = ("--config", "--reports", "--set")


def hoist_globals(args: list[str]) -> list[str]:
    """``args`` with the global options that follow the command moved before it, where click
    reads them: ``bgci status --json`` is ``bgci --json status`` (as README and SPEC write both).
    Nothing after a ``--`` is touched."""
    command = None
    i = 0
    while i < len(args):  # the command: the first word that is neither an option nor its value
        if args[i] in _GLOBAL_VALUES:
            i += 2
            continue
        if not args[i].startswith("-"):
            command = i
            break
        i += 1
    if command is None:
        return args
    moved: list[str] = []
    rest: list[str] = []
    i = command + 1
    while i < len(args):
        word = args[i]
        if word == "--":
            rest += args[i:]
            break
        if word in _GLOBAL_FLAGS or (len(word) > 1 and word[0] == "-" and word[1] != "-"
                                     and set(word[1:]) <= {"v", "q"}):
            moved.append(word)
        elif word in _GLOBAL_VALUES and i + 1 < len(args):
            moved += args[i:i + 2]
            i += 1
        elif word.split("=", 1)[0] in _GLOBAL_VALUES and "=" in word:
            moved.append(word)
        else:
            rest.append(word)
        i += 1
    return [*args[:command], *moved, args[command], *rest]


def main() -> None:
    cli(args=hoist_globals(sys.argv[1:]), prog_name="bgci")
