"""Running the bgci.deploy collection's playbooks with the real ansible-playbook: an inventory of
one host (this machine through ``connection: local``, or through a private sshd), the collection
from this checkout, everything Ansible writes kept in the test's temporary directory, and the
play recap read back.

Plain code, no fixtures; ansible-core comes with tox's e2e env (a missing ansible-playbook fails
the test, never skips it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from e2e_support import REPO, clean_env

COLLECTIONS = REPO / "ci-templates" / "ansible"
COLLECTION = COLLECTIONS / "ansible_collections" / "bgci" / "deploy"
PLAYBOOK_TIMEOUT = 600.0
_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+"
                    r"skipped=(\d+)", re.MULTILINE)


def ansible_tool(name: str) -> str:
    """An ansible-core command of this interpreter's environment (tox's e2e env installs it)."""
    found = Path(sys.executable).with_name(name)
    if not found.is_file():
        pytest.fail(f"no {name} next to {sys.executable}: ansible-core is in tox's e2e env "
                    "(`pip install ansible-core` to run this test by hand)", pytrace=False)
    return str(found)


def ansible_playbook() -> str:
    return ansible_tool("ansible-playbook")


def ansible_test() -> str:
    return ansible_tool("ansible-test")


def bgci_executable() -> str:
    """The bgci the managed host runs: the one installed with this interpreter."""
    found = Path(sys.executable).with_name("bgci")
    if not found.is_file():
        pytest.fail(f"no bgci next to {sys.executable}: pip install -e .", pytrace=False)
    return str(found)


@dataclass
class Recap:
    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int


@dataclass
class Played:
    """One finished ansible-playbook run."""

    argv: list[str]
    code: int
    output: str
    seconds: float
    recap: Recap | None

    def __str__(self) -> str:
        return (f"`{' '.join(self.argv[1:3])} ...` exited {self.code} after {self.seconds:.1f}s "
                f"(recap {self.recap}):\n{self.output[-6000:]}")


class Ansible:
    """ansible-playbook against one host named ``target``, with the collection of this checkout.

    ``connection`` is ``local`` (this machine) or ``ssh`` (``ssh_env``: the HOME and DOCKER_HOST
    the e2e sshd fixture made; its key logs in as root on 127.0.0.1)."""

    def __init__(self, workdir: Path, connection: str, ssh_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        remote_tmp = workdir / "remote-tmp"
        host = {"ansible_python_interpreter": sys.executable, "ansible_remote_tmp": str(remote_tmp)}
        if connection == "local":
            host.update(ansible_connection="local", ansible_host="127.0.0.1")
        else:
            assert ssh_env is not None, "an ssh host needs the sshd fixture's environment"
            self.home = Path(ssh_env["HOME"])
            port = urlsplit(ssh_env["DOCKER_HOST"]).port
            host.update(ansible_connection="ssh", ansible_host="127.0.0.1", ansible_port=str(port),
                        ansible_user="root",
                        ansible_ssh_private_key_file=str(self.home / ".ssh" / "id_ed25519"),
                        ansible_ssh_common_args="-o StrictHostKeyChecking=no "
                                                "-o UserKnownHostsFile=/dev/null")
        self.inventory = workdir / "inventory.json"
        self.inventory.write_text(json.dumps({"all": {"hosts": {"target": host}}}))
        self.runs: list[Played] = []

    def env(self) -> dict[str, str]:
        return clean_env({
            "HOME": str(self.home),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "local-tmp"),
            "ANSIBLE_HOME": str(self.workdir / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            # ssh's ControlPath is a Unix socket (at most 107 bytes): under pytest's deep tmp
            # paths ~/.ansible/cp/... is too long, so the socket is named by ssh's own hash
            # (%C) in /tmp; ssh removes it when the master connection ends.
            "ANSIBLE_SSH_CONTROL_PATH": "/tmp/bgci-ssh-%%C",
        })

    def play(self, playbook: str, variables: dict[str, Any], *options: str) -> Played:
        """``ansible-playbook PLAYBOOK`` (a collection's ``bgci.deploy.NAME`` or a path) with
        ``variables`` as extra vars (``-e @file``), in the work dir; stdin closed, as in CI."""
        extra = self.workdir / f"vars-{len(self.runs)}.json"
        extra.write_text(json.dumps(variables))
        argv = [ansible_playbook(), playbook, "-i", str(self.inventory), "-e", f"@{extra}",
                *options]
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=self.workdir, env=self.env(), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"ansible-playbook {playbook} did not finish within "
                                 f"{PLAYBOOK_TIMEOUT:.0f}s:\n{exc.stdout!r}") from None
        output = proc.stdout + proc.stderr
        found = _RECAP.search(output)
        recap = Recap(*(int(n) for n in found.groups()[1:])) if found else None
        played = Played(argv, proc.returncode, output, time.monotonic() - started, recap)
        self.runs.append(played)
        return played


def changed(played: Played) -> int:
    """The recap's changed count of a run that passed."""
    assert played.code == 0 and played.recap is not None, str(played)
    assert played.recap.failed == 0 and played.recap.unreachable == 0, str(played)
    return played.recap.changed


def failed_task(played: Played) -> str:
    """The output of a run that failed, from its first failed task on."""
    assert played.code != 0 and played.recap is not None and played.recap.failed == 1, str(played)
    at = played.output.find("fatal: [target]: FAILED!")
    assert at >= 0, str(played)
    return played.output[at:]
