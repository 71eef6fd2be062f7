"""`bgci releases`: every release the app ran, as the state recorded it and the target has it now;
and ``find_release``, which names one of them from what a person types (a version, an image, a
digest or its first characters). Read-only: no lock, nothing started."""

from __future__ import annotations

import time
from typing import Any

from bgci.deployment import Deployment
from bgci.errors import ConfigError
from bgci.health import observe
from bgci.model import Colour, Instance, StageResult, epoch, iso, other
from bgci.record import ReleaseRecord, State

_HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 7  # hex digits of a digest that name it (as git's short SHAs)


def releases(d: Deployment, result: StageResult) -> StageResult:
    state = d.store.read()
    instances = d.platform.instances()
    result.live_url, result.preview_url = d.router.live_url, d.router.preview_url
    seen = observe(d.router.live_url, d.config.health, reach=d.router.reach)
    result.live_colour, result.observed = seen.colour, True
    result.idle_colour = other(seen.colour) if seen.colour else None
    records = sorted(state.releases.values(), key=lambda r: r.deployed_last, reverse=True)
    rows = [_row(d, state, record, instances, seen.colour) for record in records]
    result.extra["releases"] = rows
    result.message = (f"{len(rows)} release(s) recorded for {d.config.app}"
                      + (f"; live: {seen.colour}" if seen.colour else "; nothing answers live"))
    result.display = render(rows) + f"\n{result.message}"
    return result


def _row(d: Deployment, state: State, record: ReleaseRecord, instances: dict[Colour, Instance],
         live: Colour | None) -> dict[str, Any]:
    release = record.release
    colours = sorted(c for c, i in instances.items()
                     if i.running and i.release.digest == release.digest)
    built = d.platform.built(release)
    return {
        "version": record.version, "image": release.image, "digest": release.digest,
        "built": iso(built) if built else None,
        "available": built is not None,
        "deployed_first": iso(record.deployed_first) if record.deployed_first else None,
        "deployed_last": iso(record.deployed_last) if record.deployed_last else None,
        "live_since": iso(record.live_since) if record.live_since else None,
        "live_until": iso(record.live_until) if record.live_until else None,
        "verified": state.is_verified(release.digest),
        "quarantined": state.quarantined.get(release.digest),
        "colors": colours,
        "serving_live": live is not None and live in colours,  # who answered, just now
    }


def render(rows: list[dict[str, Any]]) -> str:
    """The releases as a table, newest deploy first."""
    if not rows:
        return "no release recorded yet: `bgci deploy-green` records each one it starts"
    header = ("VERSION", "DIGEST", "BUILT", "LAST DEPLOYED", "LIVE", "STATUS", "RUNS ON")
    lines = [header]
    for row in rows:
        status = (f"quarantined: {row['quarantined']}" if row["quarantined"]
                  else "verified" if row["verified"] else "not verified")
        if not row["available"]:
            status += " (gone from the target)"
        live = ("now" if row["serving_live"] else
                f"{_ago(row['live_since'])}..{_ago(row['live_until'])}" if row["live_since"]
                else "-")
        lines.append((row["version"], row["digest"].removeprefix("sha256:")[:12],
                      _ago(row["built"]), _ago(row["deployed_last"]), live, status,
                      ", ".join(row["colors"]) or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
                     + "  " + line[-1] for line in lines)


def _ago(at: str | None) -> str:
    """An ISO time as "3h ago" (seconds, minutes, hours or days); "-" for none."""
    if not at:
        return "-"
    seconds = max(0.0, time.time() - epoch(at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def find_release(state: State, wanted: str) -> ReleaseRecord:
    """The recorded release ``wanted`` names: a digest (``sha256:...``), its first 7+ hex digits,
    a version (the image's tag, a release id) or an image reference. ConfigError (exit 2) when
    it names none, or more than one."""
    wanted = wanted.strip()
    records = list(state.releases.values())
    hexpart = wanted.removeprefix("sha256:").lower()
    found = [r for r in records if r.release.digest == wanted]
    if not found and len(hexpart) >= MIN_PREFIX and set(hexpart) <= _HEX:
        found = [r for r in records if r.release.digest.removeprefix("sha256:").startswith(hexpart)]
    if not found:
        found = [r for r in records if wanted in (r.version, r.release.image)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{r.version} ({r.release.digest.removeprefix('sha256:')[:12]})"
                      for r in records[-8:]) or "none yet"
    if found:
        raise ConfigError(f"{wanted!r} names {len(found)} recorded releases: "
                          + ", ".join(r.release.digest[:19] for r in found),
                          "name one by its digest (`bgci releases` lists them)")
    raise ConfigError(f"no recorded release of this app is {wanted!r} (recorded: {known})",
                      "`bgci releases` lists every release with its version and digest")
