"""What of ``build.context`` never goes into a release: one rule for both platforms.

The rule is the app's ``.dockerignore``, read as docker reads it (so the same file decides what a
docker build sends and what a process-platform release copies), on top of what is never part of a
release on the process platform, whatever that file says:

- version control and tool directories: ``.git``, ``.hg``, ``.svn``, ``.tox``, ``.nox``, caches
  (``__pycache__``, ``.pytest_cache``, ``.mypy_cache``, ``.ruff_cache``), ``*.pyc``, ``*.egg-info``;
- every virtualenv: a directory holding ``pyvenv.cfg`` (the CI wrappers' ``.bgci-venv``, a
  project's ``.venv``), or named ``.bgci-venv``, ``.venv`` or ``venv``;
- bgci's own directories: the reports dir and the state dir, given as ``excluded``.

On docker the engine applies ``.dockerignore`` itself; list ``.bgci-venv`` and the reports dir
there when they sit in the build context (the GitLab template and the Jenkins step put their
virtualenv in the project directory by default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DOCKERIGNORE = ".dockerignore"
VENV_MARKER = "pyvenv.cfg"
# never part of a release: version control, tool and cache directories, virtualenvs by name
IGNORED = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".bgci-venv", ".tox", ".nox",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", "bgci-reports", ".DS_Store"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


@dataclass(frozen=True)
class Pattern:
    """One line of a ``.dockerignore``: a path pattern, or an exception to the ones before it."""

    regex: re.Pattern[str]
    exception: bool

    def matches(self, rel: str) -> bool:
        """``rel`` or one of its parent directories matches (as docker's patternmatcher does)."""
        parts = rel.split("/")
        return any(self.regex.match("/".join(parts[:i])) for i in range(len(parts), 0, -1))


def translate(pattern: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern as a regex over ``/``-separated relative paths: ``*`` and ``?``
    within one path element, ``**`` across any number of them, ``[...]`` classes, ``\\`` escapes."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = pattern[i + 1:end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def parse(text: str) -> list[Pattern]:
    """The patterns of a ``.dockerignore``, as docker reads them: comments and blank lines
    skipped, each path cleaned and made relative to the context."""
    patterns = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if not line:
            continue
        line = os.path.normpath(line).replace(os.sep, "/")
        if len(line) > 1 and line.startswith("/"):
            line = line.lstrip("/")
        patterns.append(Pattern(translate(line), exception))
    return patterns


@dataclass
class Rule:
    """The ignore rule of one build context (see the module's docstring)."""

    root: Path
    excluded: set[Path] = field(default_factory=set)  # absolute: bgci's reports and state dirs
    patterns: list[Pattern] = field(default_factory=list)

    @classmethod
    def of(cls, root: Path, excluded: set[Path] | None = None) -> Rule:
        """The rule of the context ``root``: bgci's own, plus its ``.dockerignore`` if any."""
        try:
            text = (root / DOCKERIGNORE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return cls(root, {p.resolve() for p in excluded or set()}, parse(text))

    def listed(self, rel: str) -> bool:
        """Whether the ``.dockerignore`` excludes the relative path ``rel`` (the last matching
        line decides; an exception line brings a path back)."""
        ignored = False
        for pattern in self.patterns:
            if pattern.exception == ignored and pattern.matches(rel):
                ignored = not pattern.exception
        return ignored

    def _always(self, path: Path, is_dir: bool) -> bool:
        name = path.name
        if name in IGNORED or name.endswith(IGNORED_SUFFIXES):
            return True
        return is_dir and ((path / VENV_MARKER).is_file() or path.resolve() in self.excluded)

    def walk(self) -> Iterator[Path]:
        """Every file and symlink under the root that belongs in a release, in a stable order
        (symlinks to directories are kept as links, never followed)."""
        exceptions = any(p.exception for p in self.patterns)
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            links = [d for d in dirnames if (here / d).is_symlink()]
            kept = []
            for name in sorted(set(dirnames) - set(links)):
                path = here / name
                if self._always(path, is_dir=True):
                    continue
                # an exception line may bring back a file inside a listed directory: walk it then
                if not exceptions and self.listed(path.relative_to(self.root).as_posix()):
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames + links):
                path = here / name
                if not self._always(path, is_dir=False) and \
                        not self.listed(path.relative_to(self.root).as_posix()):
                    yield path
