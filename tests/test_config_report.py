"""`bgci config`: each value with its origin, secrets masked, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bgci.config import load_config
from bgci.config_report import MASK, entries

CONFIG = """app = "shop"
[platform]
kind = "process"
command = "gunicorn app:app -b 127.0.0.1:{port}"
env = { DATABASE_URL = "postgres://shop:hunter2-long-secret@db/shop", PLAIN = "visible" }
[health]
path = "/healthz"
[notify]
url = "https://hooks.example.invalid/services/T000/B000/abcdefSECRET"
[hooks.pre_switch]
command = "migrate --token=tok-1234567890abcdef"
"""


def run_bgci(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BGCI_", "GITHUB_", "CI"))}
    return subprocess.run([sys.executable, "-m", "bgci", *args], cwd=root, capture_output=True,
                          text=True, env={**clean, **(env or {})}, check=False, timeout=60)


def test_each_value_says_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(CONFIG)
    out = run_bgci(tmp_path, "config", "--set", "switch.drain=3",
                   env={"BGCI_HEALTH_TIMEOUT": "5", "BGCI_PLATFORM_ENV_API_TOKEN": "t0ken-abcdefgh"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    def line(start: str) -> str:
        return next(x for x in lines if x.startswith(start))
    assert line('path = "/healthz"').endswith(f"# {tmp_path / 'bgci.toml'}:7")
    assert line("timeout = 5").endswith("# environment variable BGCI_HEALTH_TIMEOUT")
    assert line("drain = 3").endswith("# --set switch.drain")
    assert line("successes = 3").endswith("# default")
    assert line("PLAIN = ").startswith('PLAIN = "visible"')
    assert f'API_TOKEN = "{MASK}"' in out.stdout
    for secret in ("hunter2-long-secret", "tok-1234567890abcdef", "abcdefSECRET", "t0ken-abcdefgh"):
        assert secret not in out.stdout + out.stderr, secret
    assert not (tmp_path / "bgci-reports").exists(), "config writes no report"


def test_json_has_the_same_values_and_origins(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(CONFIG)
    out = run_bgci(tmp_path, "config", "--json")
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)["values"]
    assert values["health.path"] == {"value": "/healthz", "origin": f"{tmp_path / 'bgci.toml'}:7"}
    assert values["platform.env.DATABASE_URL"]["value"] == "postgres://shop:***@db/shop"
    assert values["router.kind"]["origin"] == "default"


def test_a_bad_config_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n[health]\npaht = "/x"\n')
    out = run_bgci(tmp_path, "config")
    assert out.returncode == 2 and "did you mean 'path'" in out.stderr
    assert "bgci config: error (exit 2)" in out.stderr


def test_entries_cover_every_key(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n')
    keys = {e.key for e in entries(load_config(cwd=tmp_path, environ={}))}
    assert {"app", "router.listen", "switch.drain", "verify.smoke_command"} <= keys
