"""The generated reference pages in docs/ match the code (regenerate: python -m bgci.reference docs/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.config import scalar_keys
from bgci.reference import PAGES

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_page_is_fresh(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == PAGES[name](), (
        f"docs/{name} is stale: run `python -m bgci.reference docs/` and commit the result"
    )


def test_every_config_key_and_command_is_documented() -> None:
    config = PAGES["configuration.md"]()
    for key in scalar_keys():
        assert f"| `{key}` |" in config
    cli = PAGES["cli.md"]()
    for command in ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire",
                    "deploy", "lock status", "lock release"):
        assert f"## `bgci {command}`" in cli
