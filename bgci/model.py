"""The typed values stages pass around: colours, releases, checks, stage results and the state."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
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


@dataclass(frozen=True)
class ColourSpec:
    """What a colour was started with besides its release: the port its app listens on, its
    environment, its command (process platform), its replicas (swarm) and its volumes (docker).

    Each colour keeps its own, recorded with it: a new port, env or command reaches only the colour
    the next release goes to, and the router reaches each colour through its own record.
    """

    port: int
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    command: str = ""
    replicas: int = 1
    volumes: Mapping[str, str] = field(default_factory=dict, hash=False)  # docker: source -> path

    def to_dict(self) -> dict[str, Any]:
        found = {"port": self.port, "env": dict(self.env), "command": self.command,
                 "replicas": self.replicas}
        # only when there are some: a spec recorded before volumes existed keeps its digest
        return {**found, "volumes": dict(self.volumes)} if self.volumes else found

    @classmethod
    def from_dict(cls, data: Any) -> ColourSpec | None:
        if not isinstance(data, dict) or not isinstance(data.get("port"), int):
            return None
        env, volumes = data.get("env"), data.get("volumes")
        return cls(port=data["port"],
                   env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
                   command=str(data.get("command") or ""),
                   replicas=int(data.get("replicas") or 1),
                   volumes={str(k): str(v) for k, v in volumes.items()}
                   if isinstance(volumes, dict) else {})

    @property
    def digest(self) -> str:
        """A short hash of the whole spec: two colours with the same one were started alike."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def differences(self, other: ColourSpec | None) -> list[str]:
        """What ``other`` (what runs) has that this spec (what is asked for) does not, for people
        (env values are never shown: they may be secrets)."""
        if other is None:
            return ["started by an earlier bgci, which did not record its settings"]
        found = [f"platform.{key} {getattr(other, key)!r} -> {getattr(self, key)!r}"
                 for key in ("port", "command", "replicas") if getattr(other, key) != getattr(self, key)]
        if dict(self.volumes) != dict(other.volumes):
            found.append(f"platform.volumes {dict(other.volumes)!r} -> {dict(self.volumes)!r}")
        changed = sorted(k for k in {*self.env, *other.env} if self.env.get(k) != other.env.get(k))
        if changed:
            found.append(f"platform.env {', '.join(changed)}")
        return found


@dataclass
class Instance:
    """One running (or stopped) colour on a platform.

    ``address`` is ``host:port`` as the router reaches it (a container or service name where the
    router resolves names itself); ``direct_url`` is where the colour itself answers, when the
    runner can reach it (for humans and debugging); ``spec`` what it was started with (None: by an
    older bgci, which did not record it).
    """

    colour: Colour
    release: Release
    address: str
    running: bool
    started_at: float
    direct_url: str = ""
    spec: ColourSpec | None = None


@dataclass(frozen=True)
class Observation:
    """Who answered fresh requests through the live address, just now: ``colour`` when every one
    was a healthy answer from that one colour, else None; ``detail`` says what was seen."""

    colour: Colour | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.colour is not None


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
    observed: bool = False  # live_colour is who answered through the live address at the end

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
        self.colours[colour] = ColourRecord(release=release, spec=spec, deployed_at=time.time())
        self.candidate = colour

    def switched(self, live: Colour, old: Colour | None) -> None:
        """Live traffic went to ``live`` from ``old`` (None: nothing was live): ``old`` becomes
        the rollback target while it runs."""
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
        )


def _colour(value: Any) -> Colour | None:
    return value if value in COLOURS else None
