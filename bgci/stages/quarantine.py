"""`bgci quarantine list` and `bgci quarantine clear`: see the digests a rollback (or a failed bake)
quarantined, and lift one, recorded in the history with who did it and why."""

from __future__ import annotations

from typing import Any

from bgci.deployment import Deployment
from bgci.errors import ConfigError
from bgci.model import Check, StageResult
from bgci.record import State
from bgci.stages.common import history
from bgci.stages.releases import find_release


def quarantine_list(d: Deployment, result: StageResult) -> StageResult:
    """Read-only: each quarantined digest with its release's version and the reason."""
    state = d.store.read()
    rows = [_row(state, digest, reason) for digest, reason in state.quarantined.items()]
    result.extra["quarantined"] = rows
    result.message = (f"{len(rows)} quarantined release(s)" if rows
                      else "no release is quarantined")
    result.display = "\n".join([*(f"{r['digest']}  {r['version'] or '?'}  {r['reason']}"
                                  for r in rows), result.message])
    return result


def quarantine_clear(d: Deployment, result: StageResult, wanted: str, reason: str) -> StageResult:
    """Lift the quarantine of the release ``wanted`` names (a digest, its first characters, a
    version); ``reason`` goes into the history with who lifted it. Its verification is not
    restored: `verify` it again (unless it passed verify while quarantined)."""
    if not reason.strip():
        raise ConfigError("quarantine clear needs --reason: the history says why a release "
                          "a rollback quarantined was let back", "e.g. --reason \"the bug was "
                          "in the payment provider, fixed there\"")
    with d.locked():
        state = d.store.read()
        digest = _quarantined_digest(state, wanted)
        was = state.quarantined.pop(digest)
        result.changed = True
        record = state.releases.get(digest)
        name = f"{record.version} ({digest[:19]})" if record else digest
        result.set_release(record.release if record else None)
        result.digest = digest
        history(d, state, "quarantine", f"quarantine of {name} lifted: {reason} (it was: {was})",
                record.release if record else None)
        d.store.write(state)
        next_step = ("`bgci switch` may send traffic to it" if state.is_verified(digest)
                     else "`bgci verify` it before `bgci switch`")
        result.message = f"lifted the quarantine of {name}; {next_step}"
        result.add(Check("quarantine clear", "passed", 0.0,
                         f"{result.message}. Reason: {reason}. It was quarantined: {was}"))
        d.log.info(result.message)
    return result


def _quarantined_digest(state: State, wanted: str) -> str:
    """The quarantined digest ``wanted`` names (ConfigError, exit 2, when none)."""
    if wanted in state.quarantined:
        return wanted
    listed = ", ".join(d[:19] for d in state.quarantined) or "none"
    try:
        digest = find_release(state, wanted).release.digest
    except ConfigError:
        matches = [d for d in state.quarantined
                   if d.removeprefix("sha256:").startswith(wanted.removeprefix("sha256:"))
                   and len(wanted.removeprefix("sha256:")) >= 7]
        if len(matches) != 1:
            raise ConfigError(f"{wanted!r} names no quarantined release (quarantined: {listed})",
                              "`bgci quarantine list` shows them") from None
        return matches[0]
    if digest not in state.quarantined:
        raise ConfigError(f"{wanted!r} ({digest[:19]}) is not quarantined "
                          f"(quarantined: {listed})", "`bgci quarantine list` shows them")
    return digest


def _row(state: State, digest: str, reason: str) -> dict[str, Any]:
    record = state.releases.get(digest)
    return {"digest": digest, "version": record.version if record else None,
            "image": record.release.image if record else None, "reason": reason}
