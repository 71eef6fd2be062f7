"""`bgci lock status` and `bgci lock release`: the deploy lock, for operators."""

from __future__ import annotations

from bgci.deployment import Deployment
from bgci.model import StageResult


def lock_status(d: Deployment, result: StageResult) -> StageResult:
    """Who holds the deploy lock (read-only)."""
    held = d.store.current_lock()
    result.extra["lock"] = held.to_dict() if held else None
    result.message = f"held by {held.describe()}" if held else "the deploy lock is free"
    return result


def lock_release(d: Deployment, result: StageResult) -> StageResult:
    """Release the deploy lock whoever holds it (for a pipeline that died holding it)."""
    held = d.store.current_lock()
    if held is None:
        result.message = "the deploy lock was already free"
        return result
    d.store.unlock(held)
    result.changed = True
    result.message = f"released the deploy lock held by {held.describe()}"
    d.log.info(result.message)
    return result
