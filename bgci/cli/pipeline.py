"""The pipeline's commands: each runs one stage (``deploy`` four) and leaves its reports."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bgci.cli.common import EPILOG, digest_option, dry_run_option, lock_wait_option, run

if TYPE_CHECKING:
    from bgci.app import Options, Stage
    from bgci.deployment import Deployment
    from bgci.model import StageResult


def require_clean_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--require-clean", is_flag=True, envvar="BGCI_REQUIRE_CLEAN",
                        help="Refuse to build uncommitted changes (default: build them, tagged "
                             "<sha>-dirty-<hash of the changes>).")(f)


@click.command(epilog=EPILOG)
@click.option("--tag", envvar="BGCI_TAG", help="Image tag (default: the git SHA).")
@require_clean_option
@click.pass_obj
def build(opts: Options, tag: str | None, require_clean: bool) -> None:
    """Run build.test_command, then build the image tagged with the git SHA."""
    from bgci.stages.build import build as stage

    run(opts, "build", lambda d, r: stage(d, r, tag, require_clean=require_clean))


@click.command("deploy-green", epilog=EPILOG)
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


@click.command(epilog=EPILOG)
@digest_option
@lock_wait_option
@click.pass_obj
def verify(opts: Options, digest: str, lock_wait: float) -> None:
    """Health checks, the smoke suite and the latency budget against the preview address."""
    from bgci.stages.verify import verify as stage

    run(opts, "verify", lambda d, r: stage(d, r, digest), lock_wait)


@click.command(epilog=EPILOG)
@click.option("--force", is_flag=True, envvar="BGCI_FORCE",
              help="Switch even if the idle colour is not verified.")
@dry_run_option
@digest_option
@lock_wait_option
@click.pass_obj
def switch(opts: Options, force: bool, dry_run: bool, digest: str, lock_wait: float) -> None:
    """Atomically send live traffic to the verified idle colour; confirm, drain, bake."""
    from bgci.stages.switch import switch as stage

    run(opts, "switch", lambda d, r: stage(d, r, force=force, dry_run=dry_run, digest=digest),
        lock_wait)


@click.command(epilog=EPILOG)
@click.option("--to", "to", envvar="BGCI_ROLLBACK_TO", metavar="VERSION|DIGEST",
              help="Any recorded release still on the target (`bgci releases` lists them): "
                   "started on the idle colour, health-checked, then switched to.")
@dry_run_option
@lock_wait_option
@click.pass_obj
def rollback(opts: Options, to: str | None, dry_run: bool, lock_wait: float) -> None:
    """Send live traffic back to the previous colour (or --to another release) and quarantine
    the rolled-back digest."""
    from bgci.stages.rollback import rollback as stage
    from bgci.stages.rollback import rollback_to

    if to:
        run(opts, "rollback", lambda d, r: rollback_to(d, r, to, dry_run=dry_run), lock_wait)
    else:
        run(opts, "rollback", lambda d, r: stage(d, r, dry_run=dry_run), lock_wait)


@click.command(epilog=EPILOG)
@click.option("--history", "entries", type=int, default=10, show_default=True,
              envvar="BGCI_HISTORY", help="History entries to show.")
@click.pass_obj
def status(opts: Options, entries: int) -> None:
    """Live colour, what each colour runs, health, verified flags, lock and history."""
    from bgci.stages.status import status as stage

    run(opts, "status", lambda d, r: stage(d, r, history=entries))


@click.command(epilog=EPILOG)
@click.option("--force", is_flag=True, envvar="BGCI_FORCE",
              help="Retire even before switch.retire_after, or the last rollback target.")
@click.option("--prune", is_flag=True, envvar="BGCI_PRUNE",
              help="Also remove the releases (images, release dirs) that no colour and no "
                   "rollback needs.")
@click.option("--keep", type=click.IntRange(min=0), default=3, show_default=True,
              envvar="BGCI_KEEP", help="--prune keeps this many newest deployed releases "
                                       "besides, for `rollback --to`.")
@lock_wait_option
@click.pass_obj
def retire(opts: Options, force: bool, prune: bool, keep: int, lock_wait: float) -> None:
    """Stop the idle colour once it has been idle longer than switch.retire_after."""
    from bgci.stages.retire import retire as stage

    run(opts, "retire", lambda d, r: stage(d, r, force=force, prune=prune, keep=keep), lock_wait)


@click.command(epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def down(opts: Options, lock_wait: float) -> None:
    """Stop both colours and the managed router (the app goes offline; state and releases stay).
    Other stages refuse until `bgci up`."""
    from bgci.stages.down import down as stage

    run(opts, "down", stage, lock_wait)


@click.command(epilog=EPILOG)
@lock_wait_option
@click.pass_obj
def up(opts: Options, lock_wait: float) -> None:
    """The inverse of down: the live colour and the router as recorded, proven through the live
    address."""
    from bgci.stages.down import up as stage

    run(opts, "up", stage, lock_wait)


@click.command(epilog=EPILOG)
@click.option("--tag", envvar="BGCI_TAG", help="Image tag (default: the git SHA).")
@require_clean_option
@lock_wait_option
@click.pass_obj
def deploy(opts: Options, tag: str | None, require_clean: bool, lock_wait: float) -> None:
    """build -> deploy-green -> verify -> switch in one process, one report per stage."""
    from bgci.stages.build import build as build_stage
    from bgci.stages.deploy_green import deploy_green as green_stage
    from bgci.stages.switch import switch as switch_stage
    from bgci.stages.verify import verify as verify_stage

    built: list[str] = []

    def do_build(d: Deployment, r: StageResult) -> None:
        build_stage(d, r, tag, require_clean=require_clean)
        built.extend((r.image, r.digest))

    steps: list[tuple[str, Stage]] = [
        ("build", do_build),
        ("deploy-green", lambda d, r: green_stage(d, r, built[0])),
        ("verify", lambda d, r: verify_stage(d, r, built[1])),
        ("switch", lambda d, r: switch_stage(d, r, digest=built[1])),
    ]
    from bgci.app import run_stages

    sys.exit(run_stages(opts, steps, lock_wait))


@click.group()
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


@click.group()
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
