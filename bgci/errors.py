"""One error hierarchy; each class carries the exit code the SPEC gives it."""

from __future__ import annotations

from typing import Literal

Status = Literal["passed", "failed", "error", "refused"]


class BgciError(Exception):
    """Root of every error bgci reports to a user. ``exit_code`` is what the CLI exits with,
    ``status`` the word the reports give the stage that raised it."""

    exit_code = 1
    status: Status = "failed"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class CheckFailed(BgciError):
    """A health probe, smoke test, switch confirmation or bake failed (exit 1)."""

    exit_code = 1


class ConfigError(BgciError):
    """Usage or configuration error (exit 2): names the file, the key and what was expected."""

    exit_code = 2
    status: Status = "error"


class InfraError(BgciError):
    """Docker engine, router or state store unreachable or broken; nothing was changed (exit 3)."""

    exit_code = 3
    status: Status = "error"


class Refused(BgciError):
    """Refused as unsafe (exit 4)."""

    exit_code = 4
    status: Status = "refused"


class LockHeld(BgciError):
    """The deploy lock is held by another pipeline past ``--lock-wait`` (exit 5)."""

    exit_code = 5
    status: Status = "error"


class Interrupted(BgciError):
    """SIGINT/SIGTERM: the stage stopped with live traffic on exactly one healthy colour (130)."""

    exit_code = 130
    status: Status = "error"


EXIT_CODES: dict[int, str] = {
    0: "stage reached its goal",
    1: "a check failed (health, smoke, switch confirmation, bake): the JUnit report says which",
    2: "usage or configuration error: the message names the file, the key and what was expected",
    3: "infrastructure unreachable or broken (docker engine, router, state store): nothing changed",
    4: "refused as unsafe (quarantined digest, unverified or unhealthy green, nothing to roll back)",
    5: "deploy lock held by another pipeline past --lock-wait seconds: the message names the holder",
    130: "interrupted; live traffic still goes to exactly one healthy colour",
}

