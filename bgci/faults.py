"""Named points inside the stages where the fault-injection tests stop bgci (and `kill -9` it),
and one knob that makes bgci start its routers as another version of bgci would.

With ``BGCI_TEST_PAUSE_AT=<point>`` the process writes its pid to ``BGCI_TEST_PAUSE_FILE`` on
reaching that point and sleeps until it is killed. Without the variable a checkpoint costs one
dictionary lookup. Tests use it to prove that a crash at any step leaves live traffic on exactly
one healthy colour and that re-running the stage completes it.
"""

from __future__ import annotations

import os
import time

POINTS = (
    "deploy-green:locked", "deploy-green:started", "deploy-green:routed", "deploy-green:recorded",
    "switch:locked", "switch:switched", "switch:confirmed", "switch:recorded",
    "rollback:locked", "rollback:recreated", "rollback:switched", "rollback:recorded",
)


def checkpoint(point: str) -> None:
    """Pause here forever if the fault-injection test asks for ``point``."""
    if os.environ.get("BGCI_TEST_PAUSE_AT") != point:
        return
    marker = os.environ.get("BGCI_TEST_PAUSE_FILE")
    if marker:
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
    while True:
        time.sleep(60)


def router_template(version: str) -> str:
    """A router template's version, as the routers this process starts carry it in their
    fingerprint. ``BGCI_TEST_ROUTER_TEMPLATE=<suffix>`` changes it, as if another version of bgci
    (with another template) had started them: the tests of router changes use it."""
    return version + os.environ.get("BGCI_TEST_ROUTER_TEMPLATE", "")
