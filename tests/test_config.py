"""The config loader: files, precedence, and every kind of mistake a user makes (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.config import Config, load_config, scalar_keys
from bgci.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "bgci.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, env: dict[str, str] | None = None, sets: tuple[str, ...] = ()) -> Config:
    return load_config(cwd=tmp_path, environ=env or {}, overrides=sets)


def test_defaults_from_minimal_file(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    config = load(tmp_path)
    assert config.app == "shop"
    assert config.router.listen == "127.0.0.1:8080"
    assert config.health.successes == 3
    assert config.switch.drain == 10.0
    assert config.image_repo == "shop"
    assert config.root == tmp_path
    assert config.source == str(tmp_path / "bgci.toml")


def test_pyproject_tool_section(tmp_path: Path) -> None:
    write(tmp_path, '[project]\nname="x"\n[tool.bgci]\napp = "shop"\n[tool.bgci.health]\npath = "/up"\n',
          "pyproject.toml")
    config = load(tmp_path)
    assert (config.app, config.health.path) == ("shop", "/up")


def test_bgci_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path, '[tool.bgci]\napp = "from-pyproject"\n', "pyproject.toml")
    write(tmp_path, 'app = "from-bgci-toml"\n')
    assert load(tmp_path).app == "from-bgci-toml"


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n[health]\ndeadline = 10\ntimeout = 1.5\n')
    env = {"BGCI_HEALTH_DEADLINE": "20", "BGCI_HEALTH_TIMEOUT": "3"}
    config = load(tmp_path, env, ("health.deadline=30",))
    assert config.health.deadline == 30.0  # --set beats the environment
    assert config.health.timeout == 3.0  # the environment beats the file


def test_env_string_and_table_values(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    env = {"BGCI_ROUTER_LISTEN": "0.0.0.0:80", "BGCI_PLATFORM_ENV": '{ A = "1", B = 2 }'}
    config = load(tmp_path, env)
    assert config.router.listen == "0.0.0.0:80"
    assert config.platform.env == {"A": "1", "B": "2"}


def test_hook_keys_from_set(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    config = load(tmp_path, sets=("hooks.pre_switch.command=python manage.py migrate",
                                  "hooks.pre_switch.run_in=green"))
    assert config.hooks.pre_switch.command == "python manage.py migrate"
    assert config.hooks.pre_switch.run_in == "green"


def test_explicit_config_path_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'app = "elsewhere"\n', "deploy.toml")
    assert load_config(str(path), cwd=Path("/"), environ={}).app == "elsewhere"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.toml"), cwd=tmp_path, environ={})


def test_no_config_file_needs_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="app is required"):
        load(tmp_path)
    assert load(tmp_path, {"BGCI_APP": "shop"}).app == "shop"


# (file text, what the message must say): every one is exit 2 naming the key.
BAD_CONFIGS = [
    ('app = "shop"\n[router]\nlisten_addr = "x"\n', "router.listen_addr", "did you mean 'listen'"),
    ('app = "shop"\n[helth]\npath = "/"\n', "'helth'", "did you mean 'health'"),
    ('app = "shop"\n[health]\ntimeout = "fast"\n', "health.timeout", "must be a number"),
    ('app = "shop"\n[health]\nsuccesses = 1.5\n', "health.successes", "must be an integer"),
    ('app = "shop"\n[health]\nsuccesses = true\n', "health.successes", "must be an integer"),
    ('app = "shop"\n[build]\npush = "yes"\n', "build.push", "true or false"),
    ('app = "shop"\n[build]\nbuild_args = ["a"]\n', "build.build_args", "table of strings"),
    ('app = "Shop_1"\n', "app", "[a-z0-9-]"),
    ('app = "shop"\n[platform]\nkind = "dokcer"\n', "platform.kind", "did you mean 'docker'"),
    ('app = "shop"\n[router]\nkind = "envoy"\n', "router.kind", "supported"),
    ('app = "shop"\n[router]\nlisten = "8080"\n', "router.listen", "host:port"),
    ('app = "shop"\n[router]\npreview = "127.0.0.1:70000"\n', "router.preview", "host:port"),
    ('app = "shop"\n[router]\nlisten = "127.0.0.1:1"\npreview = "127.0.0.1:1"\n', "must differ", ""),
    ('app = "shop"\n[health]\npath = "healthz"\n', "health.path", "start with /"),
    ('app = "shop"\n[health]\ndeadline = 0\n', "health.deadline", "greater than 0"),
    ('app = "shop"\n[switch]\nmax_error_rate = 2\n', "switch.max_error_rate", "between 0 and 1"),
    ('app = "shop"\n[switch]\ndrain = -1\n', "switch.drain", "0 or more"),
    ('app = "shop"\n[health]\nstatus = 42\n', "health.status", "HTTP status"),
    ('app = "shop"\n[hooks.pre_switch]\nrun_in = "blue"\n', "hooks.pre_switch.run_in", "supported"),
    ('app = "shop"\n[hooks.pre_swich]\ncommand = "x"\n', "pre_swich", "did you mean 'pre_switch'"),
    ('app = "shop"\nrouter = 3\n', "[router]", "must be a table"),
    ('app = "shop"\n[router\n', "not valid TOML", ""),
]


@pytest.mark.parametrize(("text", "names", "says"), BAD_CONFIGS)
def test_bad_config_is_exit_2_naming_file_and_key(
    tmp_path: Path, text: str, names: str, says: str
) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert str(tmp_path / "bgci.toml") in message
    assert names in message
    assert says in message


def test_bad_env_and_set_values(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    with pytest.raises(ConfigError, match=r"health\.deadline must be a number"):
        load(tmp_path, {"BGCI_HEALTH_DEADLINE": "soon"})
    with pytest.raises(ConfigError, match=r"unknown key 'router\.lisen'.*did you mean 'router\.listen'"):
        load(tmp_path, sets=("router.lisen=:80",))
    with pytest.raises(ConfigError, match=r"SECTION\.KEY=VALUE"):
        load(tmp_path, sets=("router.listen",))


def test_every_scalar_key_has_an_env_name(tmp_path: Path) -> None:
    keys = scalar_keys()
    assert "router.listen" in keys and "hooks.post_rollback.timeout" in keys
    assert "source" not in keys and "root" not in keys


# -- every error names where the wrong value came from --------------------------------------
def test_a_value_from_the_file_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'app = "shop"\n\n[platform]\nkind = "docker"\nport = "eighty"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:5: platform\.port must be an integer"):
        load(tmp_path)


def test_a_value_from_the_environment_is_named_by_its_variable(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    with pytest.raises(ConfigError, match=r"^environment variable BGCI_PLATFORM_PORT: platform\.port "
                                          r"must be an integer, got 'abc'"):
        load(tmp_path, {"BGCI_PLATFORM_PORT": "abc"})


def test_a_value_from_set_is_named_by_set(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    with pytest.raises(ConfigError, match=r"^--set health\.timeout: health\.timeout must be "
                                          r"greater than 0"):
        load(tmp_path, sets=("health.timeout=-1",))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite_is_a_usage_error(tmp_path: Path, value: str) -> None:
    write(tmp_path, f'app = "shop"\n[health]\ntimeout = {value}\n')
    with pytest.raises(ConfigError, match=r"bgci\.toml:3: health\.timeout must be a finite number"):
        load(tmp_path)


def test_kinds_are_listed_once_as_values(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, sets=("platform.kind=k8s",))
    assert str(caught.value) == ("--set platform.kind: platform.kind = 'k8s' is not supported "
                                 "(supported: docker, process, swarm)")


def test_a_hook_without_a_command_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n[hooks.pre_switch]\nrun_in = "green"\n')
    with pytest.raises(ConfigError, match=r"bgci\.toml:3: \[hooks\.pre_switch\] has no command"):
        load(tmp_path)


def test_one_entry_of_platform_env_from_the_environment_or_set_keeps_the_others(
        tmp_path: Path) -> None:
    write(tmp_path, 'app = "shop"\n[platform]\nenv = { DJANGO_ALLOWED_HOSTS = "shop.example", '
                    'A = "1" }\n')
    config = load(tmp_path, {"BGCI_PLATFORM_ENV_FEATURE_X": "on"}, ("platform.env.A=2",))
    assert config.platform.env == {"DJANGO_ALLOWED_HOSTS": "shop.example", "A": "2",
                                   "FEATURE_X": "on"}
    assert config.origin("platform.env.A") == "--set platform.env.A"


def test_no_config_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert str(tmp_path / "bgci.toml") in str(caught.value)
    assert str(tmp_path / "pyproject.toml") in str(caught.value)
