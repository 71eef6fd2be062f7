"""``platform.volumes`` (docker): what the loader takes and refuses (exit 2), and how a colour
records it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgci.config import load_config
from bgci.errors import ConfigError
from bgci.model import ColourSpec


def load(tmp_path: Path, platform: str) -> None:
    (tmp_path / "bgci.toml").write_text(f'app = "notes"\n[platform]\n{platform}\n')
    load_config(cwd=tmp_path, environ={})


def test_names_and_host_paths_mount_at_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(
        'app = "notes"\n[platform]\nvolumes = { data = "/data", "/srv/uploads" = "/app/uploads" }\n')
    loaded = load_config(cwd=tmp_path, environ={})
    assert loaded.platform.volumes == {"data": "/data", "/srv/uploads": "/app/uploads"}
    # the environment sets the whole table, as for platform.env
    loaded = load_config(cwd=tmp_path, environ={"BGCI_PLATFORM_VOLUMES": '{ db = "/var/db" }'})
    assert loaded.platform.volumes == {"db": "/var/db"}


@pytest.mark.parametrize(("platform", "message"), [
    ('kind = "process"\ncommand = "x {port}"\nvolumes = { data = "/data" }',
     'bgci.toml:5: platform.volumes is for platform.kind = "docker", not \'process\''),
    ('volumes = { data = "data" }', "platform.volumes.data = 'data' must be an absolute path"),
    ('volumes = { data = "/" }', "platform.volumes.data = '/' must be an absolute path"),
    ('volumes = { "../up" = "/data" }', "platform.volumes source '../up' must be a volume name"),
    ('volumes = { a = "/data", b = "/data" }', "platform.volumes mounts 'a' and 'b' both at /data"),
])
def test_what_cannot_be_mounted_is_a_config_error(tmp_path: Path, platform: str,
                                                  message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, platform)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_spec_records_its_volumes_and_one_without_keeps_its_digest() -> None:
    plain = ColourSpec(port=8000, env={"A": "1"})
    assert "volumes" not in plain.to_dict()  # as recorded before volumes existed
    mounted = ColourSpec(port=8000, env={"A": "1"}, volumes={"data": "/data"})
    assert ColourSpec.from_dict(mounted.to_dict()) == mounted
    assert dict(ColourSpec.from_dict(mounted.to_dict()).volumes) == {"data": "/data"}  # type: ignore[union-attr]
    assert mounted.digest != plain.digest
    assert mounted.differences(plain) == ["platform.volumes {} -> {'data': '/data'}"]
