"""The stage core's world: three healthy releases and a broken one, and a pipeline over them
(tests/fakes.py). A module that needs other releases overrides ``world``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import Pipeline, World


@pytest.fixture
def world() -> World:
    w = World()
    for image in ("v1", "v2", "v3"):
        w.add_image(image)
    w.add_image("broken", healthy=False)
    return w


@pytest.fixture
def p(tmp_path: Path, world: World) -> Pipeline:
    return Pipeline(tmp_path, world)
