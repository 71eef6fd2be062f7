"""Run a few calls at the same instant, each in its own thread (for lock races)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def race(calls: Sequence[Callable[[], Any]], timeout: float = 60.0) -> list[Any]:
    """Start every call together (a barrier), wait for all; their results (an exception is
    re-raised in the caller)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    return results
