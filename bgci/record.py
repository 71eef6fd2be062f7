"""The recorded state of one app: the truth a stage heals the target toward.

Which colour serves live traffic, what each colour runs and was started with, every release the
app ran (``ReleaseRecord``), verified and quarantined digests, a switch under way, and the history.
A state store (``bgci.ports.StateStore``) keeps it as JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from bgci.model import COLOURS, Colour, ColourSpec, Release, epoch, iso, other

HISTORY_LIMIT = 500
RELEASES_LIMIT = 100  # the newest; an older release is still in the history


@dataclass
class ReleaseRecord:
    """A release the app ran: when it was first and last deployed, and when it last went live and
    stopped being live (0: never / still live)."""

    release: Release
    deployed_first: float = 0.0
    deployed_last: float = 0.0
    live_since: float = 0.0
    live_until: float = 0.0
    spec: ColourSpec | None = None  # the settings it was last started with (`rollback --to`)

    @property
    def version(self) -> str:
        """What a person calls it: the image's tag (``shop:1.4.2`` -> ``1.4.2``) or the
        process platform's release id."""
        ref = self.release.image.split("@", 1)[0]
        name = ref.rsplit("/", 1)[-1]
        return name.rsplit(":", 1)[1] if ":" in name else name

    def to_dict(self) -> dict[str, Any]:
        return {**self.release.to_dict(), "deployed_first": self.deployed_first,
                "deployed_last": self.deployed_last, "live_since": self.live_since,
                "live_until": self.live_until, "spec": self.spec.to_dict() if self.spec else None}

    @classmethod
    def from_dict(cls, data: Any) -> ReleaseRecord | None:
        release = Release.from_dict(data)
        if release is None or not release.digest:
            return None
        first, last, since, until = (float(data.get(key) or 0.0) for key in (
            "deployed_first", "deployed_last", "live_since", "live_until"))
        return cls(release, first, last, since, until, ColourSpec.from_dict(data.get("spec")))


@dataclass
class ColourRecord:
    """What bgci last put on a colour, kept even after its instance is gone (for re-creation)."""

    release: Release | None = None
    spec: ColourSpec | None = None
    deployed_at: float = 0.0
    idle_since: float = 0.0  # when it last stopped taking live traffic

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.to_dict() if self.release else None,
            "spec": self.spec.to_dict() if self.spec else None,
            "deployed_at": self.deployed_at,
            "idle_since": self.idle_since,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ColourRecord:
        data = data if isinstance(data, dict) else {}
        return cls(
            release=Release.from_dict(data.get("release")),
            spec=ColourSpec.from_dict(data.get("spec")),
            deployed_at=float(data.get("deployed_at") or 0.0),
            idle_since=float(data.get("idle_since") or 0.0),
        )


@dataclass(frozen=True)
class Intent:
    """A switch or rollback that is about to move live traffic, written before the router is told:
    if bgci dies between the router's move and the record of it, the next stage finds the router
    where the intent says and finishes the record; else it drops the intent (nothing moved)."""

    stage: Literal["switch", "rollback"]
    to: Colour
    since: float = 0.0
    reason: str = ""  # rollback: why (goes into the quarantine)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "to": self.to, "since": self.since, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Any) -> Intent | None:
        if not isinstance(data, dict) or data.get("stage") not in ("switch", "rollback"):
            return None
        to = _colour(data.get("to"))
        if to is None:
            return None
        return cls(stage=data["stage"], to=to, since=float(data.get("since") or 0.0),
                   reason=str(data.get("reason") or ""))


@dataclass
class State:
    """The persistent facts, the truth a stage heals the target toward: which colour serves live
    traffic, what each colour runs and was started with, verified and quarantined digests, the
    history. The router is brought back to it when it drifts (``bgci.stages.common.reconcile``)."""

    app: str
    colours: dict[Colour, ColourRecord] = field(
        default_factory=lambda: {c: ColourRecord() for c in COLOURS}
    )
    live: Colour | None = None  # the colour live traffic goes to, as the last switch left it
    intent: Intent | None = None  # a switch or rollback under way (see Intent)
    down: dict[str, str] | None = None  # who took the app down with `bgci down`, and when
    candidate: Colour | None = None  # deployed by deploy-green, not yet switched to
    previous: Colour | None = None  # live before the last switch: the rollback target
    previous_release: Release | None = None
    rolled_back_to: Colour | None = None  # set by rollback, cleared by switch: rollback is idempotent
    verified: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # digest -> reason
    history: list[dict[str, Any]] = field(default_factory=list)
    releases: dict[str, ReleaseRecord] = field(default_factory=dict)  # digest -> its record

    def release_record(self, release: Release) -> ReleaseRecord:
        """The record of ``release`` (by digest), made when it is new; the newest are kept."""
        record = self.releases.get(release.digest)
        if record is None:
            now = time.time()
            record = self.releases[release.digest] = ReleaseRecord(release, now, now)
            oldest = sorted(self.releases.values(), key=lambda r: r.deployed_last)
            for gone in oldest[:max(0, len(self.releases) - RELEASES_LIMIT)]:
                del self.releases[gone.release.digest]
        return record

    def _went_live(self, live: Colour, old: Colour | None) -> None:
        now = time.time()
        new = self.release_of(live)
        if old is not None and old != live and (gone := self.release_of(old)) is not None \
                and (new is None or gone.digest != new.digest) and gone.digest in self.releases:
            self.releases[gone.digest].live_until = now
        if new is not None and new.digest:
            record = self.release_record(new)
            record.live_since, record.live_until = now, 0.0

    def record(self, colour: Colour) -> ColourRecord:
        return self.colours[colour]

    def release_of(self, colour: Colour) -> Release | None:
        return self.colours[colour].release

    def is_verified(self, digest: str) -> bool:
        return bool(digest) and digest in self.verified and digest not in self.quarantined

    def mark_verified(self, digest: str) -> None:
        if digest and digest not in self.verified:
            self.verified.append(digest)
            del self.verified[:-50]

    def unverify(self, digest: str) -> bool:
        """Forget a verification (its latest verify failed); True when there was one."""
        if digest in self.verified:
            self.verified.remove(digest)
            return True
        return False

    def quarantine(self, digest: str, reason: str) -> None:
        if digest:
            self.quarantined[digest] = reason
            if digest in self.verified:
                self.verified.remove(digest)

    # -- transitions -----------------------------------------------------------------------
    def deployed(self, colour: Colour, release: Release, spec: ColourSpec | None) -> None:
        """``colour`` now runs ``release`` started with ``spec``: the candidate for a switch."""
        now = time.time()
        self.colours[colour] = ColourRecord(release=release, spec=spec, deployed_at=now)
        self.candidate = colour
        if release.digest:
            record = self.release_record(release)
            record.release, record.spec = release, spec  # its newest name and settings
            record.deployed_first = record.deployed_first or now
            record.deployed_last = now

    def switched(self, live: Colour, old: Colour | None) -> None:
        """Live traffic went to ``live`` from ``old`` (None: nothing was live): ``old`` becomes
        the rollback target while it runs."""
        self._went_live(live, old)
        self.live = live
        self.intent = None
        self.candidate = None
        self.rolled_back_to = None
        if old is not None and old != live:
            self.previous, self.previous_release = old, self.release_of(old)
            self.colours[old].idle_since = time.time()

    def rolled_back(self, live: Colour, bad: Release | None, reason: str) -> None:
        """Live traffic went back to ``live``; what ran on the other colour is quarantined."""
        if bad is not None:
            self.quarantine(bad.digest, f"{reason} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._went_live(live, other(live))
        self.live = live
        self.intent = None
        self.previous = self.previous_release = None
        self.rolled_back_to = live
        self.candidate = None
        self.colours[other(live)].idle_since = time.time()

    def log(self, entry: dict[str, Any]) -> None:
        """Append a history entry (the oldest fall off past HISTORY_LIMIT)."""
        entry = {"at": iso(time.time()), **entry}
        self.history.append(entry)
        del self.history[:-HISTORY_LIMIT]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 2,
            "app": self.app,
            "colours": {c: self.colours[c].to_dict() for c in COLOURS},
            "live": self.live,
            "intent": self.intent.to_dict() if self.intent else None,
            "down": dict(self.down) if self.down else None,
            "candidate": self.candidate,
            "previous": self.previous,
            "previous_release": self.previous_release.to_dict() if self.previous_release else None,
            "rolled_back_to": self.rolled_back_to,
            "verified": list(self.verified),
            "quarantined": dict(self.quarantined),
            "history": list(self.history),
            "releases": [record.to_dict() for record in self.releases.values()],
        }

    @classmethod
    def from_dict(cls, app: str, data: Any) -> State:
        data = data if isinstance(data, dict) else {}
        colours = data.get("colours") if isinstance(data.get("colours"), dict) else {}
        down = data.get("down")
        return cls(
            app=app,
            colours={c: ColourRecord.from_dict(colours.get(c)) for c in COLOURS},
            live=_colour(data.get("live")),
            intent=Intent.from_dict(data.get("intent")),
            down={str(k): str(v) for k, v in down.items()} if isinstance(down, dict) else None,
            candidate=_colour(data.get("candidate")),
            previous=_colour(data.get("previous")),
            previous_release=Release.from_dict(data.get("previous_release")),
            rolled_back_to=_colour(data.get("rolled_back_to")),
            verified=[str(d) for d in data.get("verified") or []],
            quarantined={str(k): str(v) for k, v in (data.get("quarantined") or {}).items()},
            history=[h for h in data.get("history") or [] if isinstance(h, dict)],
            releases=_releases(data),
        )


def _releases(data: dict[str, Any]) -> dict[str, ReleaseRecord]:
    """The release records; for a state written before bgci recorded them, what its history
    shows (deploy times from the history, oldest first; live times unknown)."""
    found: dict[str, ReleaseRecord] = {}
    for item in data.get("releases") or []:
        record = ReleaseRecord.from_dict(item)
        if record is not None:
            found[record.release.digest] = record
    if "releases" in data:
        return found
    for entry in data.get("history") or []:
        release = Release.from_dict(entry)
        if isinstance(entry, dict) and entry.get("stage") == "deploy-green" \
                and entry.get("outcome") == "passed" and release is not None and release.digest:
            at = epoch(str(entry.get("at") or ""))
            record = found.setdefault(release.digest, ReleaseRecord(release, deployed_first=at))
            record.release, record.deployed_last = release, at
    return found


def _colour(value: Any) -> Colour | None:
    return value if value in COLOURS else None
