"""What of build.context goes into a process-platform release: never a virtualenv (the CI
wrappers' .bgci-venv, any directory holding pyvenv.cfg), the reports dir, version control or
caches, and nothing the app's .dockerignore lists, read exactly as docker reads it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bgci.config import load_config
from bgci.platforms.ignore import Rule, parse
from bgci.platforms.process import ProcessPlatform
from bgci.platforms.releases import copy_sources, sources_digest

DOCKERIGNORE = """\
# comments and blank lines are skipped

**/*.log
docs
!docs/keep.md
/secrets.txt
build/*/cache
tmp?
""" + "  spaced.txt  \n" + """\
data/**/raw
"""

TREE = (
    "app.py", "Dockerfile", "README.md", "secrets.txt", "sub/secrets.txt", "run.log",
    "sub/deep/run.log", "docs/index.md", "docs/keep.md", "build/x/cache/a", "build/x/keep",
    "tmp1/a", "tmpxy/a", "spaced.txt", "data/raw/a", "data/a/b/raw/c", "data/a/b/cooked",
)


def make_tree(root: Path, files: tuple[str, ...] = TREE) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def venv(root: Path) -> None:
    """A virtualenv as `python -m venv` leaves it (its pyvenv.cfg is what marks it)."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("#!/bin/sh\n")
    (root / "lib" / "site-packages").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")


def kept(root: Path, excluded: set[Path] | None = None) -> set[str]:
    return {p.relative_to(root).as_posix() for p in Rule.of(root, excluded).walk()}


def test_dockerignore_lines_exclude_what_docker_excludes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / ".dockerignore").write_text(DOCKERIGNORE)
    assert kept(tmp_path) == {
        ".dockerignore", "app.py", "Dockerfile", "README.md", "sub/secrets.txt", "docs/keep.md",
        "build/x/keep", "tmpxy/a", "data/a/b/cooked"}


def test_the_rule_agrees_with_the_docker_sdk(tmp_path: Path) -> None:
    """The docker SDK's own reading of .dockerignore (what a docker build sends) keeps the same
    files, but for the Dockerfile, which docker always sends."""
    from docker.utils.build import exclude_paths

    make_tree(tmp_path)
    (tmp_path / ".dockerignore").write_text(DOCKERIGNORE + "Dockerfile\n")
    lines = [line.strip() for line in DOCKERIGNORE.splitlines()
             if line.strip() and not line.startswith("#")]
    sent = {p for p in exclude_paths(str(tmp_path), [*lines, "Dockerfile"], dockerfile="Dockerfile")
            if (tmp_path / p).is_file()}
    assert kept(tmp_path) == sent - {"Dockerfile"}


def test_virtualenvs_reports_vcs_and_caches_are_never_copied(tmp_path: Path) -> None:
    make_tree(tmp_path, ("app.py", "pkg/mod.py", ".git/HEAD", ".tox/py/x", "pkg/__pycache__/m.pyc",
                         "x.pyc", "out/bgci.env", "bgci-reports/build.xml"))
    venv(tmp_path / ".bgci-venv")  # the GitLab template's and the Jenkins step's default
    venv(tmp_path / "ci" / "env")  # any other name: pyvenv.cfg marks it
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "x").write_text("bgci's state dir")
    # a .dockerignore cannot bring them back
    (tmp_path / ".dockerignore").write_text("!.bgci-venv\n!.git\n")

    assert kept(tmp_path, {tmp_path / "out", tmp_path / "state"}) == {
        ".dockerignore", "app.py", "pkg/mod.py"}


def test_copy_and_digest_follow_the_same_rule(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    make_tree(src)
    (src / ".dockerignore").write_text(DOCKERIGNORE)
    venv(src / ".bgci-venv")
    copy_sources(src, dest, set())
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == \
        sorted(kept(src))
    assert sources_digest(dest) == sources_digest(src)
    (src / ".bgci-venv" / "bin" / "python").write_text("changed")  # not part of the release
    (src / "docs" / "index.md").write_text("changed")
    assert sources_digest(src) == sources_digest(dest)


@pytest.mark.parametrize(("line", "pattern"), [
    ("/abs/path", "abs/path"), ("./rel/../x", "x"), ("  !  keep  ", "keep"), ("a//b/", "a/b")])
def test_lines_are_cleaned_like_docker_does(line: str, pattern: str) -> None:
    (parsed,) = parse(line)
    assert parsed.regex.match(pattern)


def test_a_process_build_leaves_out_the_wrappers_venv_and_the_reports(tmp_path: Path) -> None:
    """A build inside a CI job's project directory: bgci's virtualenv and its reports (reports.dir,
    as the wrappers set it) beside the app are not part of the release."""
    root = tmp_path / "project"
    make_tree(root, ("app.py", "VERSION", "smoke/test_smoke.py", "reports/build.json"))
    venv(root / ".bgci-venv")
    (root / ".dockerignore").write_text("smoke\n")
    (root / "bgci.toml").write_text(textwrap.dedent("""\
        app = "tiny"
        [platform]
        kind = "process"
        command = "python app.py {port}"
        state_dir = "state"
        [router]
        kind = "traefik"
        [reports]
        dir = "reports"
        """))
    config = load_config(str(root / "bgci.toml"), cwd=root, environ={})

    class Log:
        def info(self, message: str) -> None:
            pass

        debug = info

    ProcessPlatform(config).build("v1", Log(), {})  # type: ignore[arg-type]
    app = root / "state" / "tiny" / "releases" / "v1" / "app"
    assert sorted(p.relative_to(app).as_posix() for p in app.rglob("*")) == [
        ".dockerignore", "VERSION", "app.py", "bgci.toml"]
