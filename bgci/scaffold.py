"""``bgci init``: what the project in a directory is (``detect``), and the ``bgci.toml`` and
``.dockerignore`` it gets (``render_config``, ``render_dockerignore``).

Detection reads files and never runs the project's code: the framework from ``requirements.txt``
or ``pyproject.toml``, the app object or WSGI module, the health route and Django's
``ALLOWED_HOSTS`` from the Python sources (``bgci.app_sources``), the platform from a
``Dockerfile``. What it could not tell, it says (``Project.checks``): a project on no framework it
knows still gets a config that loads, with what to fill in named.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgci import app_sources
from bgci.app_sources import Found
from bgci.config import valid_app
from bgci.errors import Refused

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Found", "Project", "config_path", "describe", "detect", "render_config",
           "render_dockerignore", "sanitize"]

FRAMEWORKS = {"django": "Django", "fastapi": "FastAPI", "flask": "Flask"}  # in precedence order
SERVERS = {"django": "gunicorn", "flask": "gunicorn", "fastapi": "uvicorn"}
SMOKE_DIRS = ("smoke", "tests/smoke", "test/smoke")
DEFAULT_PORT = 8000
_NOTHING, _HEALTHZ, _PORT = Found(""), Found("/healthz"), Found(str(DEFAULT_PORT))  # guesses

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")
_INCLUDE = re.compile(r"^(?:-r|--requirement)[\s=]*(\S+)")
_EXPOSE = re.compile(r"^\s*EXPOSE\s+(\d+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Project:
    """What ``bgci init`` found in one directory."""

    root: Path
    app: Found
    framework: Found = _NOTHING  # "django" | "fastapi" | "flask" | "" (none bgci knows)
    target: Found = _NOTHING  # "app:app", "demo.wsgi", "app:create_app()"
    factory: bool = False  # target names a function that makes the app
    server_listed: bool = False  # gunicorn / uvicorn is among the dependencies
    health: Found = _HEALTHZ
    host: Found = _NOTHING  # Django: a name of ALLOWED_HOSTS for the probes
    hosts_variable: str = ""  # Django: the variable its settings read ALLOWED_HOSTS from
    dockerfile: bool = False
    port: Found = _PORT
    smoke: str = ""
    migrate: Found = _NOTHING  # the migration command, and what it was told by
    has_dockerignore: bool = False
    checks: list[str] = field(default_factory=list)  # what the user must check or fill in

    @property
    def platform(self) -> str:
        return "docker" if self.dockerfile else "process"

    @property
    def server(self) -> str:
        return SERVERS.get(self.framework.value, "")

    @property
    def command(self) -> str:
        """The process platform's command (``{port}``: the free port bgci picks for a colour)."""
        target = self.target.value
        if not target:
            return ""
        if self.server == "uvicorn":
            factory = " --factory" if self.factory else ""
            return (f"uvicorn {target}{factory} --host 127.0.0.1 --port {{port}} "
                    "--timeout-graceful-shutdown 4 --no-access-log")
        return (f"gunicorn {target} --bind 127.0.0.1:{{port}} --workers 2 --worker-class gthread "
                "--threads 4 --graceful-timeout 4 --timeout 30")

    def summary(self) -> dict[str, Any]:
        """What was detected, as ``bgci --json init`` prints it."""
        return {"app": self.app.value, "framework": self.framework.value,
                "framework_from": self.framework.where, "target": self.target.value,
                "target_from": self.target.where, "platform": self.platform,
                "command": self.command, "health_path": self.health.value,
                "health_path_from": self.health.where, "health_host": self.host.value,
                "health_host_from": self.host.where, "port": int(self.port.value),
                "smoke": self.smoke, "migrate": self.migrate.value,
                "checks": list(self.checks)}


# -- detection -----------------------------------------------------------------------------------
def detect(root: Path) -> Project:
    """Look at the project in ``root`` (nothing is imported or run, nothing written)."""
    root = root.resolve()
    meta = _pyproject(root)
    deps = _dependencies(root, meta)
    project = Project(root=root, app=app_name(root, meta))
    project.dockerfile = (root / "Dockerfile").is_file()
    project.has_dockerignore = (root / ".dockerignore").is_file()
    project.smoke = next((d for d in SMOKE_DIRS if any((root / d).glob("*.py"))), "")
    kind = next((k for k in FRAMEWORKS if k in deps), "")
    project.framework = Found(kind, deps[kind]) if kind else project.framework
    sources = app_sources.read_sources(root)
    if kind == "django":
        settings = app_sources.django_settings(sources)
        project.target = app_sources.django_wsgi(sources, settings)
        hosts = app_sources.allowed_hosts(sources, settings)
        project.host, project.hosts_variable = hosts.host, hosts.variable
    elif kind:
        project.target, project.factory = app_sources.app_object(sources, FRAMEWORKS[kind])
    project.server_listed = project.server in deps
    project.migrate = _migrations(root, kind)
    project.health = app_sources.health_route(sources) or project.health
    if project.dockerfile:
        exposed = _EXPOSE.search(_read(root / "Dockerfile"))
        if exposed and 1 <= int(exposed.group(1)) <= 65535:
            project.port = Found(str(int(exposed.group(1))), "Dockerfile EXPOSE")
    _checks(project, " and ".join(sorted(set(deps.values()))))
    return project


def _migrations(root: Path, kind: str) -> Found:
    """The command that applies the project's schema migrations, if it has any."""
    if (root / "alembic.ini").is_file():
        return Found("alembic upgrade head", "alembic.ini")
    if kind == "django" and (root / "manage.py").is_file():
        found = next(root.glob("*/migrations/__init__.py"), None)
        if found is not None:
            where = found.parent.relative_to(root).as_posix()
            return Found("python manage.py migrate --noinput", f"{where}/")
    return _NOTHING


def app_name(root: Path, meta: dict[str, Any]) -> Found:
    """The project's name (``[project].name``, else the directory's) as bgci accepts an app."""
    for raw, where in ((_table(meta, "project").get("name"), "pyproject.toml [project] name"),
                       (_table(meta, "tool", "poetry").get("name"), "pyproject.toml"),
                       (root.resolve().name, "the directory's name")):
        if isinstance(raw, str) and raw.strip():
            return Found(sanitize(raw), where)
    return Found("app")


def sanitize(raw: str) -> str:
    """``raw`` made a valid ``app``: lower case, every run of other characters one ``-``, at most
    40 characters; ``app`` when nothing is left."""
    name = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:40].rstrip("-")
    return name if valid_app(name) else "app"


def _table(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``data[k1][k2]...`` when that is a table, else an empty one."""
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _pyproject(root: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(_read(root / "pyproject.toml"))
    except tomllib.TOMLDecodeError:
        return {}  # bgci init is no linter: a broken pyproject.toml only tells it nothing
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _dependencies(root: Path, meta: dict[str, Any]) -> dict[str, str]:
    """Each distribution the project depends on (normalised name) -> the file that says so."""
    found: dict[str, str] = {}
    if (root / "requirements.txt").is_file():
        found.update(_requirements(root / "requirements.txt", root, set()))  # root: resolved
    listed = _table(meta, "project").get("dependencies")
    listed = [item for item in listed if isinstance(item, str)] if isinstance(listed, list) else []
    listed += [name for name in _table(meta, "tool", "poetry", "dependencies")
               if name.lower() != "python"]
    for item in listed:
        for name in _requirement(item):
            found.setdefault(name, "pyproject.toml")
    return found


def _requirement(line: str) -> list[str]:
    """The normalised name of one requirement (``fastapi[standard]`` also brings uvicorn)."""
    match = _NAME.match(line)
    if not match:
        return []
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    extras = {e.strip().lower() for e in (match.group(3) or "").split(",")}
    return [name, "uvicorn"] if name == "fastapi" and "standard" in extras else [name]


def _requirements(path: Path, root: Path, seen: set[Path]) -> dict[str, str]:
    """The requirements of one file and of the files it includes (``-r base.txt``)."""
    seen.add(path.resolve())
    found: dict[str, str] = {}
    for line in _read(path).splitlines():
        line = line.split(" #", 1)[0].strip()
        include = _INCLUDE.match(line)
        if include:
            nested = (path.parent / include.group(1)).resolve()
            if nested not in seen and nested.is_relative_to(root) and nested.is_file():
                for name, where in _requirements(nested, root, seen).items():
                    found.setdefault(name, where)
        elif line and not line.startswith(("#", "-")):
            for name in _requirement(line):
                found.setdefault(name, path.relative_to(root).as_posix())
    return found


def _checks(project: Project, deps_from: str) -> None:
    """What the user must check or fill in, most important first."""
    add = project.checks.append
    kind = project.framework.value
    if not deps_from:
        add("no requirements.txt or pyproject.toml dependencies: bgci could not tell the "
            "framework; the process platform installs requirements.txt into each release")
    elif not kind:
        add(f"no Django, Flask or FastAPI in {deps_from}: the config is generic"
            + ("" if project.dockerfile else "; set platform.command to the command that serves "
               "the app on 127.0.0.1:{port}"))
    elif not project.target.value:
        what = "WSGI module (<project>/wsgi.py)" if kind == "django" else \
            f"{FRAMEWORKS[kind]}(...) app object"
        add(f"no {what} found: the commented platform.command is a placeholder"
            if project.dockerfile else
            f"no {what} found: set platform.command to serve it on 127.0.0.1:{{port}}")
    if kind and not project.dockerfile and not project.server_listed:
        add(f"{project.server} is not among the dependencies ({deps_from}): add it, each release's "
            "virtualenv has only what they list")
    if not project.health.where:
        add(f"no health route found: health.path = {project.health.value!r} is a guess; give the "
            "app a cheap route that answers 200 when it can serve, and name it here")
    if kind == "django" and not project.host.where:
        add("Django answers 400 to a Host header not in ALLOWED_HOSTS, and the probes reach "
            "127.0.0.1: set health.host to one of its names (bgci could not read them)")
    elif project.host.value:
        add(f"health.host = {project.host.value!r} is from {project.host.where}: the probes send "
            "it; keep it in ALLOWED_HOSTS" + (f" (also when you set {project.hosts_variable})"
                                              if project.hosts_variable else ""))
    if project.dockerfile:
        add(f"the Dockerfile's CMD must listen on port {project.port.value} (bgci also passes it "
            "as $PORT)" + ("" if project.port.where else ": no EXPOSE says which"))
    if project.migrate.value:
        add(f"schema migrations ({project.migrate.where}): the commented [hooks.pre_switch] runs "
            f"`{project.migrate.value}` once per release; both colours share the database "
            "(bgci's docs/migrations.md)")
    if not project.smoke:
        add("no smoke suite (smoke/ or tests/smoke/): `bgci verify` runs the health checks only")
    add("router.listen / router.preview serve on 127.0.0.1:8080 / :8081: set the addresses your "
        "users and your CI reach")


# -- rendering -----------------------------------------------------------------------------------
def _toml(value: str | int) -> str:
    return str(value) if isinstance(value, int) else json.dumps(value, ensure_ascii=False)


def _key(name: str, value: str | int, comment: str, *, commented: bool = False) -> list[str]:
    return [f"# {comment}", f"{'# ' if commented else ''}{name} = {_toml(value)}"]


def render_config(project: Project, version: str) -> str:
    """The commented ``bgci.toml`` for ``project``: one comment line on every key."""
    p = project
    found = [f"{FRAMEWORKS[p.framework.value]} ({p.framework.where})" if p.framework.value
             else "no framework bgci knows"]
    found += [f"the app {p.target}"] if p.target.value else []
    found += [f"the health route {p.health}"] if p.health.where else []
    found += ["a Dockerfile"] if p.dockerfile else ["no Dockerfile"]
    header = (f"bgci configuration of {p.app.value}, written by `bgci init` (bgci {version}) from "
              f"what it found here: {', '.join(found)}. Every key is described in bgci's "
              "configuration reference (docs/configuration.md of bgci); BGCI_<SECTION>_<KEY> or "
              "--set SECTION.KEY=VALUE overrides one.")
    lines = textwrap.wrap(header, 97, initial_indent="# ", subsequent_indent="# ")
    lines += ["", *_key("app", p.app.value, "names the app's colours, router, state and image "
                        f"([a-z0-9-]; from {p.app.where})")]
    if p.dockerfile:
        lines += ["", "[build]"]
        lines += _key("dockerfile", "Dockerfile", "what `bgci build` builds (build.context \".\" "
                                                  "is this directory)")
    lines += ["", "[platform]"]
    kind = ("docker: a Dockerfile is here, each colour runs in a container of its image"
            if p.dockerfile else "process: no Dockerfile here, each colour runs from its own "
            "virtualenv (no container engine)")
    lines += _key("kind", p.platform, kind)
    if p.dockerfile:
        lines += _key("port", int(p.port.value), "the port the app listens on in its container "
                      f"(bgci sets $PORT to it; {p.port.where or 'a guess: no EXPOSE found'})")
    command = p.command or ("uvicorn MODULE:APP --host 127.0.0.1 --port {port}"
                            if p.server == "uvicorn" else "gunicorn MODULE:APP --bind 127.0.0.1:{port}")
    what = ("with kind = \"process\": the command each colour runs ({port}: a free port bgci "
            "picks)" if p.dockerfile else "the command each colour runs, in its release's "
            "directory ({port}: a free port bgci picks)")
    lines += _key("command", command, what, commented=p.dockerfile or not p.command)
    if p.hosts_variable:
        example = f"{{ {p.hosts_variable} = {_toml(p.host.value or 'www.example.com')} }}"
        lines += [f"# the app's environment (your settings read ALLOWED_HOSTS from "
                  f"{p.hosts_variable}); no secrets here", f"# env = {example}"]
    lines += ["", "[router]"]
    router = ("haproxy: HAProxy in a container, switched through its runtime API (no reload)"
              if p.dockerfile else "traefik: the Traefik binary that comes with bgci, as a "
              "local process")
    lines += _key("kind", "haproxy" if p.dockerfile else "traefik", router)
    lines += _key("listen", "127.0.0.1:8080", "where live traffic is served (host:port)")
    lines += _key("preview", "127.0.0.1:8081", "where `bgci verify` reaches the new colour "
                                              "before it goes live")
    lines += ["", "[health]"]
    lines += _key("path", p.health.value, "probed until it answers 200 ("
                  + (f"found in {p.health.where})" if p.health.where else "a guess: no route found)"))
    if p.framework.value == "django":
        why = (f"one of ALLOWED_HOSTS ({p.host.where})" if p.host.value else
               f"not needed: ALLOWED_HOSTS ({p.host.where}) lets the probes' Host in"
               if p.host.where else "SET IT to one of ALLOWED_HOSTS: Django refuses other Hosts")
        lines += _key("host", p.host.value, f"the Host header of the probes: {why}")
    lines += ["", "[verify]"]
    lines += _key("smoke", p.smoke or "smoke", "the pytest smoke suite run against the "
                  "preview (BGCI_TARGET_URL)" + ("" if p.smoke else ": none found"),
                  commented=not p.smoke)
    lines += ["", "[switch]"]
    lines += _key("drain", 10, "seconds the old colour gets to finish in-flight requests (above "
                  "the server's graceful timeout)")
    if p.migrate.value:
        lines += ["", f"# {p.migrate.where}: run the migrations once per release, in the new "
                  "release, before traffic moves", "# (bgci's docs/migrations.md: expand, then "
                  "contract). Uncomment to use:", "# [hooks.pre_switch]"]
        lines += _key("command", p.migrate.value, "the migration command", commented=True)
        lines += _key("run_in", "green", "in a one-off of the new release, with its "
                      "environment", commented=True)
    return "\n".join(lines) + "\n"


def render_dockerignore(project: Project, config_name: str = "bgci.toml") -> str:
    """A ``.dockerignore`` that keeps a release to the app itself (docker reads it for an image,
    bgci's process platform for a release): no reports, caches, virtualenvs or smoke suite, so
    that two builds of one commit are one release."""
    lines = ["# Written by `bgci init`. Docker leaves these out of the image, and bgci's process",
             "# platform out of each release: what changes between two builds of one commit",
             "# (reports, caches) would otherwise make each build a new release.",
             ".git", "**/__pycache__", "**/*.py[co]", ".pytest_cache", ".mypy_cache",
             ".ruff_cache", ".tox", ".nox", ".venv", "venv", ".bgci-venv", "bgci-reports",
             "# bgci's config and the smoke suite run on the CI runner, not in the app",
             config_name]
    if project.smoke:
        lines.append(project.smoke)
    lines += ["# local secrets never belong in an image: the app's environment is platform.env",
              ".env"]
    return "\n".join(lines) + "\n"


def config_path(cwd: Path, explicit: str | None) -> Path:
    """Where ``bgci init`` writes: ``explicit`` (``--config``), else ``bgci.toml`` in ``cwd``.
    Refused (exit 4) when that file exists, or when ``[tool.bgci]`` in pyproject.toml is the
    config bgci reads there: a bgci.toml would silently take its place."""
    path = (cwd / explicit) if explicit else cwd / "bgci.toml"
    hint = "bgci init writes a new config only: edit that one, or move it away to start over"
    if path.exists():
        raise Refused(f"{path} already exists: not overwritten", hint)
    pyproject = path.parent / "pyproject.toml"
    if not explicit and "bgci" in _table(_pyproject(path.parent), "tool"):
        raise Refused(f"{pyproject} has a [tool.bgci] table, bgci's config here: a bgci.toml "
                      "would take its place", hint)
    return path


def describe(project: Project) -> list[str]:
    """What ``bgci init`` found and what the user must check, for a person."""
    p = project
    kind = FRAMEWORKS.get(p.framework.value, "no framework bgci knows")
    lines = [f"app:       {p.app}", f"framework: {kind}"
             + (f" ({p.framework.where})" if p.framework.where else ""),
             f"serves:    {p.target if p.target.value else '(not found)'}",
             f"health:    {p.health.value}" + (f" ({p.health.where})" if p.health.where
                                                else " (a guess)")]
    if p.host.value:
        lines.append(f"host:      {p.host}")
    lines.append(f"platform:  {p.platform} ("
                 + ("a Dockerfile is here)" if p.dockerfile else "no Dockerfile here)"))
    if not p.dockerfile and p.command:
        lines.append(f"command:   {p.command}")
    lines.append(f"smoke:     {p.smoke or '(none)'}")
    return [*lines, "check:", *(f"- {line}" for line in p.checks)]
