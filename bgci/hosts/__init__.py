"""Router hosts: where a router process lives, behind ``bgci.ports.RouterHost``.

``docker.py`` (a container on the app's network), ``swarm.py`` (a service pinned to one node),
``local.py`` (a detached process on this machine: the process platform) and ``user.py`` (a router
the user runs: ``router.managed = false``). A router is built on one of them and never asks which.
"""
