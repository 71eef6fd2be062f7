"""What `bgci build` takes from git: the commit, and whether the build context holds uncommitted
changes (a real git repository in a temporary directory; the build itself over the fakes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bgci.stages.build import DIRTY, REVISION, build, git_source
from tests.fakes import Pipeline, World


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('v1')\n")
    (root / "README.md").write_text("outside the build context\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "v1")
    return root


def test_a_clean_tree_is_its_sha(repo: Path) -> None:
    source = git_source(repo, repo / "app", {})
    sha = git(repo, "rev-parse", "--short=12", "HEAD").strip()
    assert (source.tag, source.changed) == (sha, ())
    assert source.labels() == {REVISION: sha, DIRTY: "false"}


def test_uncommitted_changes_get_a_tag_of_their_own_per_content(repo: Path) -> None:
    sha = git_source(repo, repo / "app", {}).sha
    (repo / "README.md").write_text("changed, but outside the context\n")
    assert git_source(repo, repo / "app", {}).tag == sha
    (repo / "app" / "main.py").write_text("print('v2')\n")
    first = git_source(repo, repo / "app", {})
    assert first.tag.startswith(f"{sha}-dirty-") and first.changed == ("app/main.py",)
    assert first.labels()[DIRTY] == "true"
    assert git_source(repo, repo / "app", {}).tag == first.tag, "the same changes, the same tag"
    (repo / "app" / "new.py").write_text("x = 1\n")  # untracked files are changes too
    second = git_source(repo, repo / "app", {})
    assert second.tag != first.tag and "app/new.py" in second.changed
    (repo / "app" / "main.py").write_text("print('v3')\n")
    assert git_source(repo, repo / "app", {}).tag not in (first.tag, second.tag)


def test_outside_git_the_ci_commit_or_an_explicit_tag(tmp_path: Path) -> None:
    assert git_source(tmp_path, tmp_path, {"CI_COMMIT_SHA": "0123456789abcdef"}).tag == \
        "0123456789ab"
    assert git_source(tmp_path, tmp_path, {}, required=False).labels() == {}


def test_require_clean_refuses_and_a_dirty_build_is_labelled(repo: Path) -> None:
    world = World()
    p = Pipeline(repo, world)
    (repo / "app" / "main.py").write_text("print('v2')\n")
    settings = {"build": {"context": "app"}}
    message = p.refused("build", build, require_clean=True, settings=settings)
    assert "uncommitted changes (1: app/main.py)" in message and not world.images
    result = p.ok("build", build, settings=settings)
    assert "-dirty-" in result.image and world.labels[result.image][DIRTY] == "true"
    assert result.extra["dirty"] is True


def test_a_tag_bgci_deployed_that_now_names_another_image_is_said_loudly(repo: Path) -> None:
    world = World()
    p = Pipeline(repo, world)
    p.ok("build", build, "v1")
    p.deploy("app:v1")
    assert not [c for c in p.ok("build", build, "v1").checks if c.name.startswith("tag moved")]
    state = p.state()  # as if app:v1 named another image when bgci deployed it
    state["releases"][0]["digest"] = "sha256:" + "0" * 64
    result = p.ok("build", build, "v1")
    moved = [c for c in result.checks if c.name == "tag moved to another image"]
    assert moved and "one tag, two images" in moved[0].message
