"""Before a stage changes anything: heal the target toward the recorded state, and look at live
traffic; after it: look again. The three principles of bgci live here.

1. **Never worse than found.** ``conclude`` compares live traffic at the end of a stage with what
   ``reconcile`` found at its start: a stage that leaves it worse fails (exit 1), whatever else it
   did.
2. **Only claim what was observed.** The live colour a stage reports ("live: X", the JSON's
   ``live_color``, ``bgci.env``) is who answered fresh requests through the live address at the
   end of the stage (``bgci.health.observe``).
3. **The state is the truth.** ``reconcile`` brings the target back to it before anything else:
   the live colour restarted from its recorded release and settings when it is not running, the
   router started when it is missing or stopped, and sent back to the recorded live colour when it
   sends traffic elsewhere; a switch or rollback that was interrupted after it moved the router is
   recorded, one interrupted before is dropped.
"""

from __future__ import annotations

from bgci.deployment import Deployment
from bgci.errors import CheckFailed, Refused
from bgci.health import observe
from bgci.model import Colour, Instance, Observation, StageResult, other
from bgci.record import State
from bgci.stages.common import View, drain, health_check, history


def reconcile(d: Deployment, result: StageResult, *, first_deploy: bool = False
              ) -> tuple[State, View]:
    """Heal drift from the recorded state; the caller holds the deploy lock.

    Returns the state (as healed, written back when anything changed) and the target as it is now.
    Refused (exit 4) after ``bgci down``, when nothing was ever deployed (unless this is the
    ``first_deploy``: a stage about a deployment starts nothing for an app that has none), or
    when the router runs with other settings than the config asks for (applying them would cut
    live traffic: ``bgci router reboot``).
    """
    state = d.store.read()
    result.live_url, result.preview_url = d.router.live_url, d.router.preview_url
    if not first_deploy and state.live is None and not any(
            record.release for record in state.colours.values()) and not state.history:
        raise Refused(f"nothing is deployed for {d.config.app} yet",
                      "run `bgci deploy-green` first (nothing was started or changed)")
    if state.down:
        raise Refused(f"{d.config.app} was taken down by `bgci down` ({state.down.get('by', '?')}, "
                      f"{state.down.get('at', '?')}): live traffic is off on purpose, and this "
                      "stage does not turn it back on",
                      "`bgci up` brings back the router and the live colour as recorded")
    instances = d.platform.instances()
    restarted = _restart_live_colour(d, state, instances)
    if d.router.ensure({c: i.address for c, i in instances.items() if i.running}, state.live,
                       d.log):
        result.changed = True  # a router brought back is drift healed (the first one: a deploy)
    routed = d.router.live()
    if restarted is not None:
        result.changed = True
    if state.intent is not None:
        result.changed = True  # an interrupted switch or rollback recorded, or dropped
        _finish_or_drop_intent(d, state, routed)
    elif state.live is None and routed is not None:
        state.live = routed  # a state written by bgci 0.1: the router was its record of live
        d.store.write(state)
    elif state.live is not None and routed != state.live:
        d.log.info(f"drift: the router sends live traffic to {routed or 'nothing'}, but the "
                   f"state says {state.live}: sending it back to {state.live}")
        d.router.switch(state.live)
        result.changed = True
        history(d, state, result.stage, f"router sent live traffic to {routed or 'nothing'}: "
                f"back to {state.live}", state.release_of(state.live))
        d.store.write(state)
        if routed is not None and d.router.stale_for() > 0:
            # resolvers still send clients to where the record pointed: not the colour to touch
            result.add(drain(d, routed))
    if restarted is not None:
        check = result.add(health_check(d, restarted, f"health {restarted} (restarted, live)",
                                        live=True))
        if not check.ok:
            d.log.info(f"{restarted} was restarted but is not healthy yet: {check.message}")
    view = View(instances, state.live)
    d.found = observe(d.router.live_url, d.config.health, reach=d.router.reach)
    result.live_colour, result.idle_colour = d.found.colour, view.idle
    if not d.found.ok and state.live is not None:
        d.log.info(f"live traffic is not served by {state.live} as this stage starts: "
                   f"{d.found.detail}")
    return state, view


def _restart_live_colour(d: Deployment, state: State,
                         instances: dict[Colour, Instance]) -> Colour | None:
    """The colour the state says is live, started again from its recorded release and settings
    when it is not running (after `docker kill`, a reboot of the host, both colours stopped).
    Updates ``instances``; returns the colour when it was restarted."""
    live = state.live
    if live is None:
        return None
    found = instances.get(live)
    record = state.colours[live]
    if (found is not None and found.running) or record.release is None:
        return None
    if not d.platform.has(record.release):
        d.log.info(f"{live} serves live traffic but is not running, and its release "
                   f"{record.release.short} is gone: it cannot be restarted")
        return None
    spec = record.spec or (found.spec if found else None) or d.platform.spec()
    d.log.info(f"{live} serves live traffic but is not running: starting it again from its "
               f"recorded release {record.release.short}")
    instances[live] = d.platform.start(live, record.release, spec, d.log)
    history(d, state, "heal", f"restarted {live} (live) from its recorded release",
            record.release)
    d.store.write(state)
    return live


def _finish_or_drop_intent(d: Deployment, state: State, routed: Colour | None) -> None:
    """A switch or rollback that a killed run had begun: the router already moved (record what the
    run did not), or it had not (drop the intent; heal the router toward the recorded live)."""
    intent = state.intent
    assert intent is not None
    if routed == intent.to and routed != state.live:
        old = state.live
        d.log.info(f"the router already sends live traffic to {routed} but the {intent.stage} "
                   f"was never recorded (an interrupted run?): recording it now")
        if intent.stage == "switch":
            state.switched(routed, old)
            history(d, state, "switch", f"recorded interrupted switch to {routed}",
                    state.release_of(routed))
        else:
            bad = state.release_of(other(routed))
            state.rolled_back(routed, bad, intent.reason)
            history(d, state, "rollback", f"recorded interrupted rollback: live "
                    f"{other(routed)} -> {routed}; quarantined {bad.short if bad else 'nothing'}",
                    state.release_of(routed))
    else:
        state.intent = None
        if state.live is not None and routed != state.live:
            d.log.info(f"an interrupted {intent.stage} left the router on {routed or 'nothing'}: "
                       f"sending live traffic back to {state.live}")
            d.router.switch(state.live)
    d.store.write(state)


def conclude(d: Deployment, result: StageResult) -> Observation:
    """Look at live traffic as the stage ends: the live colour the stage reports is who answered.
    CheckFailed (exit 1) when live traffic was served as the stage started and is not now."""
    seen = d.seen = observe(d.router.live_url, d.config.health, reach=d.router.reach)
    result.live_colour = seen.colour
    result.observed = True
    if seen.colour is not None:
        result.idle_colour = other(seen.colour)
    if d.found is not None and d.found.ok and not seen.ok:
        raise CheckFailed(f"live traffic was served by {d.found.colour} when {result.stage} "
                          f"started and is not now: {seen.detail}",
                          "`bgci status` shows what runs; the router and the live colour are "
                          "healed toward the recorded state by the next stage (or `bgci up`)")
    return seen


def live_line(seen: Observation) -> str:
    """How a stage ends its story about live traffic: what it saw, not what it remembers."""
    return f"live: {seen.colour}" if seen.ok else f"live: not served ({seen.detail})"
