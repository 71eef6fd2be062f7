"""The typed values stages pass around: colours, releases, checks and stage results."""

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = iso(self.started)
        data["finished"] = iso(self.finished) if self.finished else None
        return data


def iso(ts: float) -> str:
    """An epoch timestamp as UTC ISO 8601 with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
