"""The machine-readable stage result (``<stage>.json``)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from bgci.model import StageResult
from bgci.report.text import fix_surrogates


def to_json(result: StageResult) -> str:
    """``result.to_dict()`` as indented JSON, keys in the model's order, ending in a newline.

    Keys are not sorted: ``stage``, ``app``, ``status``, ``exit_code`` come first because the
    dataclass declares them first. Whatever stages put in ``extra`` is made JSON-safe: paths and
    other objects become strings, NaN/infinity become null, lone surrogates become U+FFFD.
    """
    return json.dumps(_safe(result.to_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, bytes)):
        return fix_surrogates(value)
    if isinstance(value, Mapping):
        return {_key(k): _safe(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _safe(dataclasses.asdict(value))
    if isinstance(value, (set, frozenset)):
        # Sets have no order; sorting their JSON form keeps the file stable from run to run.
        return sorted((_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    # Paths, enums, datetimes...: their str() is what a reader of the file expects.
    return fix_surrogates(str(value))


def _key(key: Any) -> str:
    return fix_surrogates(key if isinstance(key, (str, bytes)) else str(key))
