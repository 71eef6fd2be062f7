"""``bgci init``: detection from the project's files (Django, Flask, FastAPI from requirements.txt
or pyproject.toml; the app object, the health route, ALLOWED_HOSTS), the config it writes (which
bgci's own loader takes as it is), and the command as a user runs it (refusals, output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bgci import __version__
from bgci.config import load_config
from bgci.platforms.ignore import Rule
from bgci.scaffold import Project, detect, render_config, render_dockerignore, sanitize

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

FLASK_APP = '''from flask import Flask

app = Flask(__name__)


@app.get("/health")
def health():
    return "ok"
'''
FASTAPI_FACTORY = '''import fastapi


def create_app() -> fastapi.FastAPI:
    api = fastapi.FastAPI()

    @api.get("/livez")
    def livez() -> str:
        return "ok"

    return api
'''
DJANGO_MANAGE = '''import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.production")
'''
DJANGO_SETTINGS = '''import os
ALLOWED_HOSTS = os.environ.get("SHOP_HOSTS", "localhost,.shop.example").split(",")
WSGI_APPLICATION = "shop.wsgi.application"
'''
DJANGO_URLS = '''from django.urls import path
urlpatterns = [path("up/", lambda r: None)]
'''


def files(root: Path, tree: dict[str, str]) -> Path:
    for name, text in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def loads(project: Project, tmp_path: Path) -> None:
    """The config init writes for ``project`` loads with bgci's loader as it is."""
    (tmp_path / "bgci.toml").write_text(render_config(project, __version__), encoding="utf-8")
    config = load_config(cwd=tmp_path, environ={})
    assert config.app == project.app.value
    assert config.platform.kind == project.platform
    assert config.health.path == project.health.value
    assert config.health.host == project.host.value
    assert config.platform.command == ("" if project.dockerfile else project.command)
    assert config.verify.smoke == project.smoke
    assert config.router.kind == ("haproxy" if project.dockerfile else "traefik")


def test_flask_from_requirements_on_the_process_platform(tmp_path: Path) -> None:
    root = files(tmp_path / "My_Shop.v2", {
        "requirements.txt": "# the app\n-r base.txt\ngunicorn==23.0.0  # serves it\n",
        "base.txt": "Flask>=3 ; python_version >= '3.10'\n",
        "shop/app.py": FLASK_APP, "tests/smoke/test_live.py": "",
    })
    project = detect(root)
    assert (project.app.value, project.app.where) == ("my-shop-v2", "the directory's name")
    assert (project.framework.value, project.framework.where) == ("flask", "base.txt")
    assert (project.target.value, project.target.where) == ("shop.app:app", "shop/app.py:3")
    assert (project.health.value, project.health.where) == ("/health", "shop/app.py:6")
    assert project.platform == "process" and project.server_listed
    assert project.command.startswith("gunicorn shop.app:app --bind 127.0.0.1:{port} ")
    assert project.smoke == "tests/smoke"
    loads(project, root)


def test_fastapi_from_pyproject_with_a_factory_and_a_dockerfile(tmp_path: Path) -> None:
    files(tmp_path, {
        "pyproject.toml": '[project]\nname = "Orders API"\ndependencies = ["fastapi[standard]"]\n',
        "src/orders/main.py": FASTAPI_FACTORY, "Dockerfile": "FROM python\nEXPOSE 9000\n",
    })
    project = detect(tmp_path)
    assert (project.app.value, project.app.where) == ("orders-api", "pyproject.toml [project] name")
    assert (project.framework.value, project.framework.where) == ("fastapi", "pyproject.toml")
    assert project.server_listed  # fastapi[standard] brings uvicorn
    assert (project.target.value, project.factory) == ("orders.main:create_app", True)
    assert project.command.startswith("uvicorn orders.main:create_app --factory --host 127.0.0.1 "
                                      "--port {port} ")
    assert project.health.value == "/livez"
    assert (project.platform, project.port.value, project.port.where) == (
        "docker", "9000", "Dockerfile EXPOSE")
    text = render_config(project, __version__)
    assert 'kind = "docker"' in text and "port = 9000" in text
    assert '# command = "uvicorn orders.main:create_app --factory' in text  # for kind = "process"
    assert any("no smoke suite" in check for check in project.checks)
    loads(project, tmp_path)


def test_django_from_poetry_reads_manage_py_and_allowed_hosts(tmp_path: Path) -> None:
    files(tmp_path, {
        "pyproject.toml": '[tool.poetry]\nname = "shop"\n[tool.poetry.dependencies]\n'
                          'python = "^3.11"\nDjango = "^5.0"\n',
        "manage.py": DJANGO_MANAGE, "shop/settings/__init__.py": "",
        "shop/settings/base.py": "DEBUG = False\n", "shop/settings/production.py": DJANGO_SETTINGS,
        "shop/urls.py": DJANGO_URLS, "shop/wsgi.py": "", "orders/migrations/__init__.py": "",
    })
    project = detect(tmp_path)
    assert project.framework.value == "django"
    assert project.target == type(project.target)(
        "shop.wsgi", "shop/settings/production.py:3 WSGI_APPLICATION")
    # ".shop.example" allows shop.example and its subdomains; localhost does not reach the app
    assert (project.host.value, project.hosts_variable) == ("shop.example", "SHOP_HOSTS")
    assert project.health.value == "/up/"  # Django's trailing slash kept
    assert project.migrate.value == "python manage.py migrate --noinput"
    assert not project.server_listed and project.platform == "process"
    assert any(check.startswith("gunicorn is not among the dependencies (pyproject.toml)")
               for check in project.checks), project.checks
    text = render_config(project, __version__)
    assert 'host = "shop.example"' in text
    assert '# env = { SHOP_HOSTS = "shop.example" }' in text
    assert '# command = "python manage.py migrate --noinput"' in text
    loads(project, tmp_path)


def test_django_without_readable_allowed_hosts_says_to_set_health_host(tmp_path: Path) -> None:
    files(tmp_path, {"requirements.txt": "django\n", "manage.py": DJANGO_MANAGE.replace(
        "shop.settings.production", "site.settings"), "site/settings.py": "ALLOWED_HOSTS = HOSTS\n"})
    project = detect(tmp_path)
    assert project.host.value == "" and project.host.where == ""
    assert any("set health.host" in check for check in project.checks), project.checks
    assert "SET IT to one of ALLOWED_HOSTS" in render_config(project, __version__)
    loads(project, tmp_path)


def test_allowed_hosts_star_needs_no_health_host(tmp_path: Path) -> None:
    files(tmp_path, {"requirements.txt": "django\n", "manage.py": DJANGO_MANAGE.replace(
        "shop.settings.production", "site.settings"), "site/settings.py": 'ALLOWED_HOSTS = ["*"]\n'})
    project = detect(tmp_path)
    assert (project.host.value, project.host.where) == ("", "site/settings.py:1 ALLOWED_HOSTS")
    assert not any("health.host" in check for check in project.checks)


def test_an_unknown_framework_gets_a_generic_config_that_says_what_to_fill_in(tmp_path: Path) -> None:
    files(tmp_path, {"requirements.txt": "starlette\n", "app.py": "print('hi')\n"})
    project = detect(tmp_path)
    assert project.framework.value == "" and project.command == ""
    assert project.checks[0] == ("no Django, Flask or FastAPI in requirements.txt: the config is "
                                 "generic; set platform.command to the command that serves the "
                                 "app on 127.0.0.1:{port}")
    assert any("no health route found" in check for check in project.checks)
    text = render_config(project, __version__)
    assert '# command = "gunicorn MODULE:APP --bind 127.0.0.1:{port}"' in text
    assert "no framework bgci knows" in text
    loads(project, tmp_path)  # it loads; `bgci deploy` then names platform.command (exit 2)


def test_fastapi_without_an_app_object_names_the_command_to_write(tmp_path: Path) -> None:
    files(tmp_path, {"requirements.txt": "fastapi==0.1\n", "main.py": "import fastapi\n"})
    project = detect(tmp_path)
    assert project.framework.value == "fastapi" and project.target.value == ""
    assert project.checks[:2] == [
        "no FastAPI(...) app object found: set platform.command to serve it on 127.0.0.1:{port}",
        "uvicorn is not among the dependencies (requirements.txt): add it, each release's "
        "virtualenv has only what they list"]
    assert '# command = "uvicorn MODULE:APP --host 127.0.0.1 --port {port}"' in render_config(
        project, __version__)
    loads(project, tmp_path)


def test_no_dependencies_at_all(tmp_path: Path) -> None:
    project = detect(files(tmp_path, {"Dockerfile": "FROM scratch\n"}))
    assert project.checks[0].startswith("no requirements.txt or pyproject.toml dependencies")
    assert any("no EXPOSE says which" in check for check in project.checks)
    loads(project, tmp_path)


@pytest.mark.parametrize(("raw", "app"), [
    ("Flask_App", "flask-app"), ("--x--", "x"), ("ünïcode app", "n-code-app"), ("___", "app"),
    ("a" * 50 + "-b", "a" * 40)])
def test_names_are_made_valid_apps(raw: str, app: str) -> None:
    assert sanitize(raw) == app


@pytest.mark.parametrize(("example", "framework", "target", "host"), [
    ("flask-app", "flask", "app:app", ""),
    ("fastapi-app", "fastapi", "app:app", ""),
    ("django-app", "django", "demo.wsgi", "django-demo.example"),
    ("migrations-app", "flask", "app:app", "")])
def test_the_examples_are_detected_as_their_own_configs_say(
        example: str, framework: str, target: str, host: str) -> None:
    project = detect(EXAMPLES / example)
    assert (project.framework.value, project.target.value) == (framework, target)
    assert (project.health.value, project.host.value) == ("/healthz", host)
    assert project.smoke == "smoke" and project.platform == "docker"
    # the command the example's process config runs, up to the graceful timeout
    own = EXAMPLES / example / ("bgci.process.toml" if example != "migrations-app" else "bgci.toml")
    command = load_config(str(own), cwd=EXAMPLES / example, environ={}).platform.command
    assert command.split(" --")[0] == project.command.split(" --")[0]


def test_the_dockerignore_keeps_reports_caches_and_the_smoke_suite_out(tmp_path: Path) -> None:
    files(tmp_path, {"requirements.txt": "flask\n", "app.py": FLASK_APP, "smoke/test_x.py": "",
                     "bgci-reports/build.json": "{}", "pkg/__pycache__/m.pyc": "", ".env": "S=1",
                     "pkg/m.py": "", "wheels/x.whl": ""})
    (tmp_path / ".dockerignore").write_text(render_dockerignore(detect(tmp_path)))
    kept = sorted(p.relative_to(tmp_path).as_posix() for p in Rule.of(tmp_path).walk())
    assert kept == [".dockerignore", "app.py", "pkg/m.py", "requirements.txt", "wheels/x.whl"]


# -- the command ---------------------------------------------------------------------------------
def bgci(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BGCI_")}
    return subprocess.run([sys.executable, "-m", "bgci", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_init_writes_both_files_says_what_it_found_and_never_overwrites(tmp_path: Path) -> None:
    files(tmp_path, {"requirements.txt": "flask\ngunicorn\n", "app.py": FLASK_APP})
    out = bgci("init", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("bgci init: wrote bgci.toml and .dockerignore\n")
    assert "  framework: Flask (requirements.txt)\n" in out.stdout
    assert "  platform:  process (no Dockerfile here)\n" in out.stdout
    assert "  - no smoke suite" in out.stdout
    assert not (tmp_path / "bgci-reports").exists()  # init writes no reports
    written = (tmp_path / "bgci.toml").read_text()
    assert load_config(cwd=tmp_path, environ={}).app == tmp_path.name.lower().replace("_", "-")

    again = bgci("init", cwd=tmp_path)
    assert again.returncode == 4 and again.stdout == ""
    assert f"bgci init: refused (exit 4): {tmp_path / 'bgci.toml'} already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert (tmp_path / "bgci.toml").read_text() == written


def test_init_keeps_a_dockerignore_and_refuses_over_tool_bgci(tmp_path: Path) -> None:
    files(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["flask"]\n'
                                       '[tool.bgci]\napp = "x"\n', ".dockerignore": "mine\n"})
    refused = bgci("init", cwd=tmp_path)
    assert refused.returncode == 4 and "has a [tool.bgci] table" in refused.stderr
    assert not (tmp_path / "bgci.toml").exists()
    out = bgci("--json", "--config", "deploy/bgci.toml", "init", cwd=tmp_path)
    assert out.returncode == 2 and "cannot write" in out.stderr  # deploy/ does not exist
    (tmp_path / "deploy").mkdir()
    out = bgci("--json", "--config", "deploy/bgci.toml", "init", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # the app of the config file's directory: there is nothing there but the file
    assert result["written"] == ["deploy/bgci.toml", "deploy/.dockerignore"]
    assert (tmp_path / ".dockerignore").read_text() == "mine\n"


def test_init_takes_no_set(tmp_path: Path) -> None:
    out = bgci("--set", "app=x", "init", cwd=tmp_path)
    assert out.returncode == 2 and "takes no --set" in out.stderr
    assert not (tmp_path / "bgci.toml").exists()
