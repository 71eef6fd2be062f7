"""Platforms: where colours run. One module per platform behind ``Platform``, registered below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bgci.config import Config
    from bgci.log import Log
    from bgci.model import Colour, Instance, Release
    from bgci.routers import RouterHost
    from bgci.state import StateStore


class Platform(Protocol):
    """Builds releases, runs one per colour, and keeps the state store and router host."""

    name: str

    def build(self, tag: str, log: Log) -> Release:
        """Build the app (image or release) tagged ``tag``; push when configured."""

    def resolve(self, image: str) -> Release:
        """The release an image reference names, with its digest (ConfigError if unknown)."""

    def has(self, release: Release) -> bool:
        """Whether ``release`` can still be started without a rebuild."""

    def start(self, colour: Colour, release: Release, log: Log) -> Instance:
        """Replace whatever runs on ``colour`` with ``release``; return once it is started."""

    def instances(self) -> dict[Colour, Instance]:
        """What runs on each colour now (colours with nothing are absent)."""

    def stop(self, colour: Colour, grace: float, log: Log) -> None:
        """SIGTERM, wait up to ``grace`` s, then kill; removes the colour's instance."""

    def run_once(self, release: Release, command: str, env: dict[str, str],
                 timeout: float) -> tuple[int, str]:
        """Run ``command`` once in a throw-away instance of ``release``: exit code and output."""

    def logs(self, colour: Colour, lines: int = 40) -> str:
        """The last ``lines`` of the colour's output, for failure reports."""

    def store(self) -> StateStore:
        """The state store that lives with this platform's target."""

    def router_host(self) -> RouterHost:
        """Where a managed router runs, next to the colours."""

    def public_host(self) -> str:
        """Host name the runner reaches the router's 0.0.0.0 addresses by."""

    def close(self) -> None: ...


def make_platform(config: Config) -> Platform:
    """The platform ``platform.kind`` names (imported lazily: `bgci --help` stays fast)."""
    if config.platform.kind == "docker":
        from bgci.platforms.docker import DockerPlatform

        return DockerPlatform(config)
    if config.platform.kind == "process":
        from bgci.platforms.process import ProcessPlatform

        return ProcessPlatform(config)
    if config.platform.kind == "swarm":
        from bgci.platforms.swarm import SwarmPlatform

        return SwarmPlatform(config)
    raise AssertionError(f"unvalidated platform.kind {config.platform.kind!r}")
