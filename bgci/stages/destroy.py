"""`bgci destroy`: remove everything bgci made for the app on the target, after saying what.

The managed router, both colours and their one-offs, networks, release directories, the state
and the deploy lock; with ``images``, the images (releases) bgci built for the app too: never an
image it only ran, which another app may share. Without ``yes`` it only
lists them and refuses (exit 4): live traffic ends for good, there is no `bgci up` after it.
The user's own router (``router.managed = false``) and the app's data volumes
(``platform.volumes``) are left as they are, and the report says so.
"""

from __future__ import annotations

import time

from bgci.deployment import Deployment
from bgci.errors import Refused
from bgci.model import COLOURS, Check, StageResult


def destroy(d: Deployment, result: StageResult, *, images: bool, yes: bool) -> StageResult:
    with d.locked():
        result.live_url, result.preview_url = d.router.live_url, d.router.preview_url
        doomed = d.platform.releases() if images else []
        plan = [*d.router.destroy(dry_run=True), *d.platform.destroy(dry_run=True),
                *(f"image {r.short}" for r in doomed), *d.store.destroy(dry_run=True)]
        result.extra["removes"] = plan
        where = f"{d.config.app} on the {d.platform.name} platform"
        listing = "\n".join(f"  - {line}" for line in plan) or "  (nothing: no trace of it here)"
        if not yes:
            raise Refused(f"`bgci destroy` would remove everything of {where}; live traffic to "
                          f"it ends for good (no `bgci up` after it):\n{listing}",
                          "run `bgci destroy --yes` to remove it"
                          + ("" if images else " (add --images for its images too)")
                          + "; nothing was removed")
        d.log.info(f"removing everything of {where}:\n{listing}")
        started = time.monotonic()
        removed = d.router.destroy(dry_run=False)
        for colour in COLOURS:  # gracefully first: in-flight requests finish
            d.platform.stop(colour, d.config.switch.drain, d.log)
        removed += d.platform.destroy(dry_run=False)
        for release in doomed:
            d.platform.remove(release)
            removed.append(f"image {release.short}")
        removed += d.store.destroy(dry_run=False)
        result.extra["removed"] = removed
        result.changed = bool(removed)
        kept = [] if d.config.router.managed else [
            "router.managed = false: your router is left as it is, and bgci's part of its "
            "configuration with it"]
        named = sorted(f"{d.config.app}-{v}" for v in d.config.platform.volumes if "/" not in v)
        if named:
            kept.append(f"the app's data volumes ({', '.join(named)}) are kept: bgci never "
                        "removes data; `docker volume rm` does")
        result.extra["kept"] = kept
        result.message = (f"removed {len(removed)} thing(s) of {where}"
                          + "".join(f"; {line}" for line in kept))
        result.add(Check("destroy", "passed", time.monotonic() - started,
                         result.message + "\n" + "\n".join(removed)))
        d.log.info(result.message)
    return result
