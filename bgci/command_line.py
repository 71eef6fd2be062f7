"""bgci's own command line as words: the group's options, and where the command stands after them.

A leaf: the CLI reads it to let global options follow the command, and a fleet to run one host's
part of the same command line (``bgci --reports r switch`` → ``switch``)."""

from __future__ import annotations

from collections.abc import Sequence

# the group's options, which may also be written after the command (`bgci status --json`)
GLOBAL_FLAGS = ("--json", "--debug", "--verbose", "--quiet")
GLOBAL_VALUES = ("--config", "--reports", "--set")


def command_index(args: Sequence[str]) -> int | None:
    """Where the command is in ``args``: the first word that is neither an option nor the value
    of one (None: there is no command)."""
    i = 0
    while i < len(args):
        if args[i] in GLOBAL_VALUES:
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            return i
    return None
