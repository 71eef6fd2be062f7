"""``BGCI_TIMINGS``: where a stage waits on something else (the app, the engine, the router).

Off unless ``BGCI_TIMINGS`` names a file. Then every bgci process appends one JSON line to it per
wait, outermost waits only (an engine call made inside a health wait is not counted twice)::

    {"pid": 4242, "on": "engine", "what": "start app-green", "start": 1764240000.12, "seconds": 0.41}

and one line per mark, e.g. the moment ``switch`` and ``rollback`` tell the router to move live
traffic: ``{"pid": 4242, "mark": "switch", "at": 1764240001.5}``. Times are epoch seconds.
A stage's own overhead is its wall time minus its waits; ``bench/`` reports it that way.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

ENV = "BGCI_TIMINGS"
F = TypeVar("F", bound=Callable[..., Any])
_local = threading.local()


def _write(path: str, entry: dict[str, Any]) -> None:
    line = json.dumps({"pid": os.getpid(), **entry}) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:  # one short append: whole lines
            handle.write(line)
    except OSError:
        pass  # measuring must never fail a deployment


@contextmanager
def waiting(on: str, what: str = "") -> Iterator[None]:
    """Record the enclosed block as time spent waiting ``on`` the app, engine or router."""
    path = os.environ.get(ENV)
    if not path:
        yield
        return
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    start, began = time.time(), time.perf_counter()
    try:
        yield
    finally:
        _local.depth = depth
        if depth == 0:
            _write(path, {"on": on, "what": what, "start": round(start, 6),
                          "seconds": round(time.perf_counter() - began, 6)})


def waits_on(on: str) -> Callable[[F], F]:
    """Decorator form of :func:`waiting`, named after the function."""
    def decorate(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with waiting(on, func.__qualname__):
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


def mark(event: str) -> None:
    """Record that ``event`` happens now (e.g. the router is told to switch)."""
    path = os.environ.get(ENV)
    if path:
        _write(path, {"mark": event, "at": round(time.time(), 6)})
