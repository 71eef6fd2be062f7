"""The typed values stages pass around: colours, releases, checks, stage results and the state."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")
Outcome = Literal["passed", "failed", "error", "skipped"]


def other(colour: Colour) -> Colour:
    """The colour that is not ``colour``."""
    return "green" if colour == "blue" else "blue"


@dataclass(frozen=True)
class Release:
    """What a colour runs: an image reference (or release id) and its content digest."""

    image: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"image": self.image, "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Any) -> Release | None:
        if not isinstance(data, dict) or not data.get("image"):
            return None
        return cls(image=str(data["image"]), digest=str(data.get("digest", "")))

    @property
    def short(self) -> str:
        return f"{self.image} ({self.digest[:19]})" if self.digest else self.image


@dataclass
class Instance:
    """One running (or stopped) colour on a platform.

    ``address`` is ``host:port`` as the router reaches it; ``direct_url`` is where the
    colour itself answers, when the runner can reach it (for humans and debugging).
    """

    colour: Colour
    release: Release
    address: str
    running: bool
    started_at: float
    direct_url: str = ""


@dataclass
class Check:
    """One check of a stage; one JUnit test case."""

    name: str
    outcome: Outcome
    seconds: float = 0.0
    message: str = ""
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "skipped")


@dataclass
class StageResult:
    """Everything a stage reports; the report writers turn it into files."""

    stage: str
    app: str
    status: Literal["passed", "failed", "error", "refused"] = "passed"
    exit_code: int = 0
    message: str = ""
    live_colour: Colour | None = None
    idle_colour: Colour | None = None
    colour: Colour | None = None  # the colour this stage acted on
    image: str = ""
    digest: str = ""
    live_url: str = ""
    preview_url: str = ""
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    checks: list[Check] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def set_release(self, release: Release | None) -> None:
        if release is not None:
            self.image, self.digest = release.image, release.digest

    def facts(self) -> dict[str, str | None]:
        """The stage's public facts under their one spelling (``color``, as in the
        ``X-Bgci-Color`` header and ``BGCI_LIVE_COLOR``): the JSON report, the JUnit properties
        and the webhook all use these names (a colour not known is None)."""
        return {
            "live_color": self.live_colour, "idle_color": self.idle_colour, "color": self.colour,
            "image": self.image, "digest": self.digest,
            "live_url": self.live_url, "preview_url": self.preview_url,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: stage, app, status and exit code first, the facts, the checks, and
        the facts' earlier spellings (``live_colour``, ``idle_colour``, ``colour``) last, kept
        for readers of bgci 0.1's reports (CHANGELOG.md says until when)."""
        data: dict[str, Any] = {
            "stage": self.stage, "app": self.app, "status": self.status,
            "exit_code": self.exit_code, "message": self.message, **self.facts(),
            "started": iso(self.started),
            "finished": iso(self.finished) if self.finished else None,
            "checks": [asdict(check) for check in self.checks],
            "extra": self.extra,
        }
        data.update({old: data[new] for old, new in LEGACY_NAMES.items()})
        return data


# bgci 0.1's spellings of the JSON report's facts -> the one spelling now
LEGACY_NAMES = {"live_colour": "live_color", "idle_colour": "idle_color", "colour": "color"}


def iso(ts: float) -> str:
    """An epoch timestamp as UTC ISO 8601 with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


HISTORY_LIMIT = 500


@dataclass
class ColourRecord:
    """What bgci last put on a colour, kept even after its container is gone (for re-creation)."""

    release: Release | None = None
    deployed_at: float = 0.0
    idle_since: float = 0.0  # when it last stopped taking live traffic

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.to_dict() if self.release else None,
            "deployed_at": self.deployed_at,
            "idle_since": self.idle_since,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ColourRecord:
        data = data if isinstance(data, dict) else {}
        return cls(
            release=Release.from_dict(data.get("release")),
            deployed_at=float(data.get("deployed_at") or 0.0),
            idle_since=float(data.get("idle_since") or 0.0),
        )


@dataclass
class State:
    """The persistent facts. Which colour is live is NOT here: the router is asked."""

    app: str
    colours: dict[Colour, ColourRecord] = field(
        default_factory=lambda: {c: ColourRecord() for c in COLOURS}
    )
    candidate: Colour | None = None  # deployed by deploy-green, not yet switched to
    previous: Colour | None = None  # live before the last switch: the rollback target
    previous_release: Release | None = None
    rolled_back_to: Colour | None = None  # set by rollback, cleared by switch: rollback is idempotent
    verified: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # digest -> reason
    history: list[dict[str, Any]] = field(default_factory=list)

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

    def quarantine(self, digest: str, reason: str) -> None:
        if digest:
            self.quarantined[digest] = reason
            if digest in self.verified:
                self.verified.remove(digest)

    def log(self, entry: dict[str, Any]) -> None:
        """Append a history entry (the oldest fall off past HISTORY_LIMIT)."""
        entry = {"at": iso(time.time()), **entry}
        self.history.append(entry)
        del self.history[:-HISTORY_LIMIT]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "app": self.app,
            "colours": {c: self.colours[c].to_dict() for c in COLOURS},
            "candidate": self.candidate,
            "previous": self.previous,
            "previous_release": self.previous_release.to_dict() if self.previous_release else None,
            "rolled_back_to": self.rolled_back_to,
            "verified": list(self.verified),
            "quarantined": dict(self.quarantined),
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, app: str, data: Any) -> State:
        data = data if isinstance(data, dict) else {}
        colours = data.get("colours") if isinstance(data.get("colours"), dict) else {}
        return cls(
            app=app,
            colours={c: ColourRecord.from_dict(colours.get(c)) for c in COLOURS},
            candidate=_colour(data.get("candidate")),
            previous=_colour(data.get("previous")),
            previous_release=Release.from_dict(data.get("previous_release")),
            rolled_back_to=_colour(data.get("rolled_back_to")),
            verified=[str(d) for d in data.get("verified") or []],
            quarantined={str(k): str(v) for k, v in (data.get("quarantined") or {}).items()},
            history=[h for h in data.get("history") or [] if isinstance(h, dict)],
        )


def _colour(value: Any) -> Colour | None:
    return value if value in COLOURS else None
