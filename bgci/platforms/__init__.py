"""Platforms: where colours run. One module per platform behind ``bgci.ports.Platform``:
``docker.py`` (containers), ``swarm.py`` (services), ``process.py`` (local processes, the embedded
default); ``bgci.registry`` is the one place that knows them all."""
