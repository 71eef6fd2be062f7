"""What a project's Python sources say about how it is served, read without running them (``bgci
init``): its Flask / FastAPI app object, its Django WSGI module and ``ALLOWED_HOSTS``, its health
route. Each finding carries where it was read, so that a person can check it.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

# health routes people write, most likely first
HEALTH_NAMES = ("healthz", "health", "healthcheck", "health-check", "_health", "livez", "readyz",
                "ping", "up")
# never the app's own code: where the Python sources are looked for stops here
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", ".bgci-venv",
                       "node_modules", "__pycache__", "build", "dist", "site-packages", "tests",
                       "test", "smoke", "migrations", "static", "templates", "bgci-reports",
                       "wheels", "docs"})
MAX_SOURCES = 400  # Python files read at most: a big repository is not walked to its end
_PREFERRED = ("app.py", "main.py", "wsgi.py", "asgi.py", "server.py", "application.py")
_HOST = re.compile(r"^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"
                   r"|^localhost$")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

Sources = dict[str, ast.Module]  # relative path -> syntax tree, shallowest first


@dataclass(frozen=True)
class Found:
    """A detected value and where it was read (``app.py:12``, ``requirements.txt``); ``where``
    is empty for a value bgci guessed."""

    value: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.value} ({self.where})" if self.where else self.value


@dataclass(frozen=True)
class AllowedHosts:
    """Django's ``ALLOWED_HOSTS`` as far as its settings module tells: ``host`` a name to send
    the probes (empty value: none needed, ``*`` or loopback only; empty ``where``: unread) and
    ``variable`` the environment variable the settings read it from, if any."""

    host: Found = Found("")
    variable: str = ""


def read_sources(root: Path) -> Sources:
    """The project's own Python files, parsed (files that do not parse are left out)."""
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
                             and not (here / d / "pyvenv.cfg").exists())
        paths += [here / name for name in sorted(filenames) if name.endswith(".py")]
        if len(paths) >= MAX_SOURCES:
            break
    paths.sort(key=lambda p: (len(p.relative_to(root).parts), str(p)))
    trees: Sources = {}
    for path in paths[:MAX_SOURCES]:
        try:
            trees[path.relative_to(root).as_posix()] = ast.parse(
                path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, SyntaxError, ValueError):
            continue
    return trees


def module_of(rel: str) -> str:
    """The import name of a source file (``src/`` layouts import without the ``src``)."""
    parts = rel.removesuffix(".py").split("/")
    parts = parts[1:] if parts[0] == "src" and len(parts) > 1 else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _called(node: ast.AST) -> str:
    """The name a call calls: ``Flask`` for ``Flask(...)`` and ``flask.Flask(...)``."""
    if not isinstance(node, ast.Call):
        return ""
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(
        func, ast.Attribute) else ""


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def app_object(sources: Sources, cls: str) -> tuple[Found, bool]:
    """The module-level ``X = Flask(...)`` (``cls`` ``"Flask"`` or ``"FastAPI"``) as
    ``module:X``; else a function that makes one, as gunicorn (``module:make()``) or uvicorn
    (``module:make``, a factory) names it. The bool: a factory."""
    ranked = sorted(sources, key=lambda rel: (rel.rsplit("/", 1)[-1] not in _PREFERRED,
                                              rel.count("/")))
    for rel in ranked:
        for node in sources[rel].body:
            if isinstance(node, ast.Assign) and _called(node.value) == cls:
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and node.value and _called(node.value) == cls:
                names = [node.target.id] if isinstance(node.target, ast.Name) else []
            else:
                continue
            if names:
                return Found(f"{module_of(rel)}:{names[0]}", f"{rel}:{node.lineno}"), False
    for rel in ranked:
        for node in sources[rel].body:
            if isinstance(node, ast.FunctionDef) and any(_called(n) == cls for n in ast.walk(node)):
                call = node.name if cls == "FastAPI" else f"{node.name}()"
                return Found(f"{module_of(rel)}:{call}", f"{rel}:{node.lineno}"), True
    return Found(""), False


def _assigns(node: ast.AST, name: str) -> bool:
    targets = (node.targets if isinstance(node, ast.Assign) else
               [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
    return any(isinstance(t, ast.Name) and t.id == name for t in targets)


def django_settings(sources: Sources) -> list[str]:
    """The settings module's files (the one manage.py names for DJANGO_SETTINGS_MODULE, then its
    siblings: a settings package may set ALLOWED_HOSTS in any of them)."""
    settings = ""
    for rel in sorted(sources, key=lambda r: r != "manage.py"):
        for node in ast.walk(sources[rel]):
            args = node.args if isinstance(node, ast.Call) else []
            if len(args) == 2 and _text(args[0]) == "DJANGO_SETTINGS_MODULE" and _text(args[1]):
                settings = _text(args[1]) or ""
                break
        if settings:
            break
    files = [rel for rel in sources if module_of(rel) == settings]
    if files:
        folder = files[0].rpartition("/")[0]
        files += [r for r in sources if r not in files and r.rpartition("/")[0] == folder]
    return files


def django_wsgi(sources: Sources, settings: list[str]) -> Found:
    """The WSGI module gunicorn serves: the settings' ``WSGI_APPLICATION`` without its
    ``.application``, else the first ``<package>/wsgi.py``."""
    for rel in settings:
        for node in ast.walk(sources[rel]):
            if isinstance(node, ast.Assign) and _assigns(node, "WSGI_APPLICATION") and \
                    _text(node.value):
                module, _, attr = (_text(node.value) or "").rpartition(".")
                target = module if attr == "application" else f"{module}:{attr}"
                return Found(target, f"{rel}:{node.lineno} WSGI_APPLICATION")
    wsgi = next((rel for rel in sources if rel.endswith("/wsgi.py")), "")
    return Found(module_of(wsgi), wsgi) if wsgi else Found("")


def allowed_hosts(sources: Sources, settings: list[str]) -> AllowedHosts:
    """The first name of ``ALLOWED_HOSTS`` that is neither ``*`` nor loopback (``.example.com``
    gives ``example.com``), from the string literals of its assignment (a default read from the
    environment counts)."""
    for rel in settings:
        for node in ast.walk(sources[rel]):
            value = getattr(node, "value", None)
            if not _assigns(node, "ALLOWED_HOSTS") or not isinstance(value, ast.AST):
                continue
            hosts: list[str] = []
            variable = ""
            for sub in ast.walk(value):
                text = _text(sub)
                if text is None:
                    continue
                variable = variable or (text if _VARIABLE.match(text) else "")
                hosts += [h for h in re.split(r"[,\s]+", text.lower()) if h == "*" or _HOST.match(h)]
            where = f"{rel}:{getattr(node, 'lineno', 0)} ALLOWED_HOSTS"
            named = [h.lstrip(".") for h in hosts if h != "*" and h not in _LOOPBACK]
            if named:
                return AllowedHosts(Found(named[0], where), variable)
            if hosts:  # "*" or loopback only: the probes' own Host header passes
                return AllowedHosts(Found("", where), variable)
    return AllowedHosts()


def health_route(sources: Sources) -> Found | None:
    """The most likely health route the sources name: a ``"/healthz"`` literal anywhere (Flask,
    FastAPI), or a Django ``path("healthz", ...)``."""
    best: tuple[int, Found] | None = None
    for rel, tree in sources.items():
        for node in ast.walk(tree):
            route = ""
            first = _text(node.args[0]) if isinstance(node, ast.Call) and node.args else None
            if first is not None and _called(node) in ("path", "re_path", "url"):
                route = "/" + first.strip("^$").removeprefix("/").removesuffix("?")
            elif (_text(node) or "").startswith("/"):
                route = _text(node) or ""
            name = route.strip("/")
            if route and name in HEALTH_NAMES:
                rank = HEALTH_NAMES.index(name)
                if best is None or rank < best[0]:
                    best = (rank, Found(route, f"{rel}:{getattr(node, 'lineno', 0)}"))
    return best[1] if best else None
