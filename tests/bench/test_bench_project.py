"""The benchmark's projects: the ``bgci.toml`` it writes is one that bgci reads back as written."""

from __future__ import annotations

from pathlib import Path

from bench.infra import Resources
from bench.project import Project
from bgci.config import load_config


def test_a_benchmark_project_writes_a_config_bgci_reads_back_whole(tmp_path: Path) -> None:
    # outside the Basic Multilingual Plane: JSON escapes these as surrogate pairs, which TOML
    # readers refuse; quotes, backslashes and a control character need TOML's own escapes
    text = 'caf\u00e9 \U0001f680 "quoted" back\\slash tab\t'
    config = {"app": "bench-toml",
              "platform": {"kind": "process", "command": "true", "state_dir": str(tmp_path),
                           "env": {"GREETING": text}},
              "router": {"kind": "haproxy", "listen": "127.0.0.1:8080",
                         "preview": "127.0.0.1:8081", "client_keepalive": True},
              "health": {"path": "/healthz", "interval": 0.2, "deadline": 60},
              "switch": {"drain": 2}}
    project = Project(tmp_path / "project", config, Resources(client=None))
    loaded = load_config(str(project.root / "bgci.toml"), cwd=project.root, environ={})
    assert loaded.platform.env == {"GREETING": text}
    assert (loaded.app, loaded.router.listen, loaded.health.interval, loaded.switch.drain) == (
        "bench-toml", "127.0.0.1:8080", 0.2, 2.0)
