"""The examples as a user finds them: every one a .dockerignore that keeps a build to the app (read
by the docker SDK exactly as a build sends the context), every config loading, and every document
they point to in the repository."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from bgci.config import load_config
from bgci.platforms.ignore import parse

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
APPS = sorted(p.name for p in EXAMPLES.iterdir() if (p / "Dockerfile").is_file())
# what a previous run, a developer or a CI job leaves in an example's directory
LEFT_BEHIND = ("bgci-reports/build.json", "bgci-reports/verify.xml", ".pytest_cache/v/x",
               "__pycache__/app.cpython-311.pyc", ".venv/pyvenv.cfg", ".bgci-venv/bin/python",
               ".mypy_cache/x.json", "wheels/flask-3.1.3-py3-none-any.whl")


def test_every_example_has_a_dockerfile() -> None:
    assert APPS == ["django-app", "fastapi-app", "flask-app", "migrations-app"]


@pytest.mark.parametrize("example", APPS)
def test_a_build_sends_the_app_and_the_wheels_only(example: str, tmp_path: Path) -> None:
    root = tmp_path / example
    shutil.copytree(EXAMPLES / example, root)
    for name in LEFT_BEHIND:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("left behind")
    patterns = [p.strip() for p in (root / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    sent = {p for p in exclude_paths(str(root), patterns, dockerfile="Dockerfile")
            if (root / p).is_file()}
    assert sent, "nothing would be sent"
    leaked = sorted(p for p in sent if p.startswith(("bgci-reports/", "smoke/", ".pytest_cache/",
                                                     ".venv/", ".bgci-venv/", ".mypy_cache/",
                                                     "next/"))
                    or "__pycache__" in p or (p.startswith("bgci") and p.endswith(".toml")))
    assert not leaked, f"{example}'s image would hold {leaked}"
    assert {"Dockerfile", "requirements.txt", "VERSION"} <= sent
    # the offline build installs from wheels/ (tests/helpers/images.py, the README)
    assert "wheels/flask-3.1.3-py3-none-any.whl" in sent
    assert parse((root / ".dockerignore").read_text())  # bgci's own reading has the same lines


@pytest.mark.parametrize("config", sorted(EXAMPLES.glob("*/bgci*.toml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_config_loads(config: Path) -> None:
    loaded = load_config(str(config), cwd=config.parent, environ={})
    assert loaded.app and loaded.health.path == "/healthz"


def test_the_examples_point_only_to_documents_in_the_repository() -> None:
    texts = [p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (
        ".toml", ".md", ".py", ".sh", ".ini", "") and "__pycache__" not in p.parts]
    missing = []
    for path in texts:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert "SPEC" not in text, f"{path} names a SPEC that is not in the repository"
        for doc in re.findall(r"\bdocs/[\w./-]+\.md\b", text):
            if not (REPO / doc).is_file():
                missing.append(f"{path.relative_to(REPO)}: {doc}")
        for link in re.findall(r"\]\(([^)#\s]+)", text):
            if "://" not in link and not (path.parent / link).exists():
                missing.append(f"{path.relative_to(REPO)}: {link}")
    assert not missing, missing
