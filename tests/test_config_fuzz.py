"""Fuzzing the config loader: whatever a user writes, the answer is a Config or exit 2, never a crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bgci.config import load_config, scalar_keys
from bgci.errors import ConfigError

KEYS = scalar_keys()
SECTIONS = sorted({k.split(".")[0] for k in KEYS if "." in k})
scalars = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=30),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                                          max_size=2),
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).replace("inf", "inf")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"app = {toml_value(draw(st.one_of(st.just('shop'), scalars)))}")
    tables: dict[str, list[str]] = {}
    for _ in range(draw(st.integers(0, 8))):
        key = draw(st.one_of(st.sampled_from(KEYS), st.text("abcdefghijklmnopqrstuvwxyz_.", min_size=1,
                                                              max_size=20)))
        section, _, leaf = key.rpartition(".")
        if not leaf or any(not part for part in key.split(".")):
            continue
        tables.setdefault(section, []).append(f"{leaf} = {toml_value(draw(scalars))}")
    for section, entries in tables.items():
        if section:
            lines.append(f"[{section}]")
        lines.extend(dict.fromkeys(entries))
    return "\n".join(lines) + "\n"


def attempt(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bgci.toml").write_text(text)
        try:
            load_config(cwd=Path(tmp), environ={})
        except ConfigError as exc:
            assert exc.exit_code == 2
            assert str(exc).startswith(str(Path(tmp) / "bgci.toml")), str(exc)


@settings(max_examples=150, deadline=None)
@given(documents())
def test_structured_documents(text: str) -> None:
    attempt(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    attempt(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(KEYS), st.text(max_size=40))
def test_environment_values(key: str, raw: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bgci.toml").write_text('app = "shop"\n')
        name = "BGCI_" + key.replace(".", "_").upper()
        try:
            load_config(cwd=Path(tmp), environ={name: raw})
        except ConfigError as exc:
            assert exc.exit_code == 2 and (key in str(exc) or name in str(exc)), str(exc)
