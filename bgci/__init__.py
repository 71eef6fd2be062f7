"""bgci: blue-green, zero-downtime deployment for Python web apps, as CI/CD pipeline steps."""

import importlib
import importlib.machinery
import sys
import types
from typing import Any

__version__ = "0.1.0"


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports it for real.

    The docker SDK imports paramiko (its ``ssh://`` transport, 120-160 ms: docs/benchmark.md)
    whatever ``DOCKER_HOST`` says, and uses it only inside the functions that open an ssh
    connection: with this in its place, a local or ``tcp://`` engine never loads it. Code that
    reads an attribute sooner simply loads it sooner."""

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def _defer(name: str) -> None:
    if name not in sys.modules and importlib.machinery.PathFinder.find_spec(name) is not None:
        sys.modules[name] = _OnFirstUse(name)


_defer("paramiko")
