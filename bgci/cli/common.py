"""What every command shares: the exit-code epilog, the common options, and running a stage
through the application service."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from bgci.errors import EXIT_CODES

if TYPE_CHECKING:
    from bgci.app import Options, Stage

# "\b" keeps click from re-wrapping the table
EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def lock_wait_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--lock-wait", type=float, default=60.0, show_default=True,
                        envvar="BGCI_LOCK_WAIT", metavar="SECONDS",
                        help="How long to wait for another pipeline's deploy lock.")(f)


def run(opts: Options, stage: str, body: Stage, lock_wait: float = 60.0) -> NoReturn:
    """Run one stage through the application service and exit with its code."""
    from bgci.app import run_stage

    sys.exit(run_stage(opts, stage, body, lock_wait))


def digest_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--digest", envvar="BGCI_DIGEST", default="", metavar="DIGEST",
                        help="The release this pipeline deployed (default: BGCI_DIGEST, as "
                             "bgci.env passes it on): refuse if the idle colour runs another.")(f)


def dry_run_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--dry-run", is_flag=True, envvar="BGCI_DRY_RUN",
                        help="Print what would change and change nothing.")(f)
