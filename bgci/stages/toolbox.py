"""The operator's commands that read or run, but deploy nothing: `bgci logs` and `bgci exec`.

Neither takes the deploy lock nor writes reports; both print to stdout what the app printed (with
secrets masked) and say on stderr what they look at. `exec` exits with the command's own code.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from bgci.deployment import Deployment
from bgci.errors import Refused
from bgci.health import observe
from bgci.model import COLOURS, Colour, ColourSpec, Release, other

WHICH = ("live", "idle", "blue", "green")


def pick_colour(d: Deployment, which: str) -> Colour:
    """``blue``/``green`` as they are; ``live``: who answers through the live address now (the
    recorded live colour when nothing answers); ``idle``: the other one. Refused (exit 4) when
    nothing is live yet."""
    if which in COLOURS:
        return which
    seen = observe(d.router.live_url, d.config.health, reach=d.router.reach).colour
    live = seen or d.store.read().live
    if live is None:
        raise Refused(f"nothing is live for {d.config.app} yet, so there is no {which} colour",
                      "name the colour: blue or green (`bgci status` shows what runs)")
    if seen is None:
        d.log.warning(f"nothing answers through {d.router.live_url}: taking the recorded live "
                      f"colour, {live}")
    return live if which == "live" else other(live)


def logs(d: Deployment, which: str, write: Callable[[str], None], *, follow: bool = False,
         since: float | None = None, tail: int | None = None) -> int:
    """The colour's own output (container or service logs, the process's log file)."""
    colour = pick_colour(d, which)
    if colour not in d.platform.instances():
        raise Refused(f"nothing runs on {colour}: it has no output to show",
                      "`bgci status` shows what runs on each colour")
    d.log.info(f"output of {colour} ({which})" + (", following (Ctrl-C ends)" if follow else ""))
    for text in d.platform.output(colour, tail=tail, since=since, follow=follow):
        write(text)
    return 0


def exec_one_off(d: Deployment, which: str, argv: list[str], write: Callable[[str], None], *,
                 timeout: float = 0.0) -> int:
    """``argv`` once in a fresh instance of the colour's release (same image or venv, the colour's
    own environment, the app's network); its exit code."""
    colour = pick_colour(d, which)
    state = d.store.read()
    instance = d.platform.instances().get(colour)
    release: Release | None = instance.release if instance else state.release_of(colour)
    spec: ColourSpec | None = (instance.spec if instance else None) or state.colours[colour].spec
    if release is None:
        raise Refused(f"{colour} runs no release and has none recorded",
                      "`bgci status` shows what runs on each colour")
    if not d.platform.has(release):
        raise Refused(f"{colour}'s release {release.short} is no longer on the target",
                      "deploy it again, or exec in the other colour")
    command = shlex.join(argv)
    d.log.info(f"running `{command}` in a one-off of {colour}'s release {release.short}")
    env = {"BGCI_COLOR": colour, "BGCI_APP": d.config.app}
    code, _ = d.platform.run_once(release, command, env, timeout, spec=spec, echo=write)
    d.log.info(f"`{command}` exited {code}")
    return code
