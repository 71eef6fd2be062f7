"""State stores: where one app's state document and deploy lock live, beside its target.

One module per backend behind ``bgci.ports.StateStore``; ``bgci.registry`` picks the one of each
platform: ``files.py`` (a directory: the process platform), ``docker.py`` (a volume and a named
container on the engine), ``swarm.py`` (Swarm configs).
"""
