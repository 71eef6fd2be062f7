"""The typed values stages pass around: colours, releases, specs, instances, checks and stage
results. (The recorded state of an app is ``bgci.record``.)"""

from __future__ import annotations

import calendar
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
    display: str = ""  # what a person reads on stdout instead of the one-line summary (a table)
    # the stage changed the deployment (what runs, what serves live traffic, a release built, a
    # digest's verified or quarantined flag, drift healed); with dry_run: it would have
    changed: bool = False
    dry_run: bool = False

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
        """The JSON report: stage, app, status and exit code first, whether it changed the
        deployment (``changed``; under ``--dry-run``, ``dry_run`` and whether it would), the
        facts, the checks, and the facts' earlier spellings (``live_colour``, ``idle_colour``,
        ``colour``) last, kept for readers of bgci 0.1's reports (CHANGELOG.md says until when)."""
        data: dict[str, Any] = {
            "stage": self.stage, "app": self.app, "status": self.status,
            "exit_code": self.exit_code, "message": self.message, "changed": self.changed,
            "dry_run": self.dry_run, **self.facts(),
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


def epoch(at: str) -> float:
    """An ``iso()`` timestamp (or any ``YYYY-MM-DDTHH:MM:SS...`` UTC) back as epoch seconds;
    0.0 when it is not one."""
    try:
        return float(calendar.timegm(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0.0
