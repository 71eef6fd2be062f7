"""The bgci.deploy Ansible collection with the real ansible-playbook: its deploy and rollback
playbooks deploy v1, v2 and roll back, each run again reporting changed=0; on the process platform
through an SSH host (the release built by the play, the approval gate stopping a run that nobody
can answer), on docker through ``connection: local`` (prebuilt images, a failing verify failing
the play with bgci's message). What is checked is what a person sees: the play recap, who answers
through the live address, the message of the failed task, and no secret in Ansible's output.

One scenario per platform, to keep the suite's time small: each runs six or seven plays; and the
sanity tests of ansible-test that run offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_ansible import COLLECTION, Ansible, ansible_test, bgci_executable, changed, failed_task
from e2e_process import pip_env, process_overrides
from e2e_support import Project, Target, clean_env, fresh_port, make_project, unique_app

from tests.helpers.images import make_app_copy

pytestmark = pytest.mark.e2e

SECRET = "s3cr3t-ansible-4f1c"  # a webhook token, say: it must appear nowhere Ansible prints
NO_LOG = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"  # how Ansible shows a no_log option's value
# A smoke test that release 3.0.0 fails: its verify must fail the play.
BROKEN_IN_3 = '''\
import os

import requests


def test_the_checkout_works() -> None:
    version = requests.get(os.environ["BGCI_TARGET_URL"] + "/version", timeout=5).json()["version"]
    assert version != "3.0.0", "the checkout is broken in 3.0.0"
'''


def reported(project: Path, stage: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / "bgci-reports" / f"{stage}.json").read_text())
    return data


@pytest.mark.process
def test_process_platform_over_ssh_builds_deploys_v1_v2_and_rolls_back_idempotently(
        process_target: Target, tmp_path: Path, ssh_docker_host: Any) -> None:
    app = unique_app("ans")
    listen, preview = f"127.0.0.1:{fresh_port()}", f"127.0.0.1:{fresh_port()}"
    state_dir = process_target.state_dir  # type: ignore[attr-defined]
    root = make_app_copy(tmp_path / "project", "1.0.0", {
        "app": app, "router.listen": listen, "router.preview": preview,
        **process_overrides(state_dir)})
    shutil.rmtree(root / "wheels")  # the release's pip finds them through PIP_FIND_LINKS
    process_target.adopt(app)
    p = Project(root=root, app=app, listen=listen, preview=preview, target=process_target)
    ansible = Ansible(tmp_path / "ansible", "ssh", ssh_docker_host.env)
    common = {"bgci_project_dir": str(root), "bgci_executable": bgci_executable(),
              "bgci_env": pip_env(), "bgci_secrets": {"BGCI_NOTIFY_TOKEN": SECRET}}
    v1 = {**common, "bgci_tag": "v1", "bgci_approval": "none"}

    first = ansible.play("bgci.deploy.deploy", v1, "-vvv")

    assert changed(first) == 4, first  # build, deploy-green, verify, switch
    p.assert_serves("blue", "1.0.0")
    assert reported(root, "build")["image"] == "v1"
    running = process_target.running(app)
    assert "Accepted publickey for root" in ssh_docker_host.log.read_text(), "not over ssh?"
    assert NO_LOG in first.output, "-vvv shows the module's options; the secret's is masked"
    assert SECRET not in first.output

    again = ansible.play("bgci.deploy.deploy", v1)

    assert changed(again) == 0, again
    assert process_target.running(app) == running, "a re-run must not restart anything"
    assert "already built" in reported(root, "build")["checks"][-1]["message"]
    assert reported(root, "switch")["changed"] is False

    # v2: nobody can answer the approval without a terminal, so the play stops before the switch
    (root / "VERSION").write_text("2.0.0\n")
    unapproved = ansible.play("bgci.deploy.deploy", {**common, "bgci_tag": "v2"})

    assert "the switch was not approved" in failed_task(unapproved), unapproved
    p.assert_serves("blue", "1.0.0")
    p.assert_serves("green", "2.0.0", p.preview_url)

    v2 = ansible.play("bgci.deploy.deploy", {**common, "bgci_tag": "v2", "bgci_approval": "none"})

    assert changed(v2) == 1, v2  # built, started and verified by the unapproved run: the switch
    p.assert_serves("green", "2.0.0")

    back = ansible.play("bgci.deploy.rollback", common)
    back_again = ansible.play("bgci.deploy.rollback", common)

    assert changed(back) == 1 and changed(back_again) == 0, (back, back_again)
    assert "already rolled back" in back_again.output
    p.assert_serves("blue", "1.0.0")
    for run in ansible.runs:
        assert SECRET not in run.output, run
    assert SECRET not in "".join(f.read_text() for f in (root / "bgci-reports").glob("*.*"))


@pytest.mark.docker
def test_docker_locally_deploys_v1_v2_rolls_back_idempotently_and_a_failing_verify_fails(
        docker_target: Target, tmp_path: Path) -> None:
    p = make_project(tmp_path / "project", docker_target,
                     smoke_files={"test_checkout.py": BROKEN_IN_3})
    ansible = Ansible(tmp_path / "ansible", "local")
    common = {"bgci_project_dir": str(p.root), "bgci_executable": bgci_executable(),
              "bgci_approval": "none", "bgci_set": {"switch.drain": 0.5}}

    def deploy(release: str) -> Any:
        return ansible.play("bgci.deploy.deploy", {**common,
                                                   "bgci_image": docker_target.release(release)})

    first = deploy("v1")
    assert changed(first) == 3, first  # deploy-green, verify, switch (no build: an image given)
    p.assert_serves("blue", "1.0.0")
    running = docker_target.running(p.app)
    again = deploy("v1")
    assert changed(again) == 0, again
    assert docker_target.running(p.app) == running, "a re-run must not restart anything"
    assert "already serves live traffic on blue" in reported(p.root, "deploy-green")["message"]

    assert changed(deploy("v2")) == 3
    p.assert_serves("green", "2.0.0")
    assert reported(p.root, "switch")["checks"][-1]["name"] == "drain blue"
    # check mode: the rollback is a --dry-run that says it would change, and changes nothing
    checked = ansible.play("bgci.deploy.rollback", common, "--check")
    assert changed(checked) == 1 and "dry run: would roll back live green -> blue" in checked.output
    p.assert_serves("green", "2.0.0")
    assert changed(ansible.play("bgci.deploy.rollback", common)) == 1
    assert changed(ansible.play("bgci.deploy.rollback", common)) == 0
    p.assert_serves("blue", "1.0.0")

    broken = deploy("v3")

    fatal = failed_task(broken)
    assert "bgci verify failed (exit 1: a check failed): verification of green" in fatal, fatal
    assert "test_the_checkout_works" in fatal, fatal
    p.assert_serves("blue", "1.0.0")
    assert reported(p.root, "verify")["status"] == "failed"


# The sanity tests of ansible-test that need nothing from the network. The others (validate-modules,
# pylint, pep8, yamllint, ansible-doc, import) install their requirements into virtualenvs that
# ansible-test bootstraps with a pip script downloaded from a host this machine cannot reach:
# tests/ci/test_ansible_collection.py checks what validate-modules would, by hand.
OFFLINE_SANITY = ("action-plugin-docs", "compile", "empty-init", "ignores", "line-endings",
                  "no-assert", "no-get-exception", "no-illegal-filenames", "no-smart-quotes",
                  "replace-urlopen", "shebang", "symlinks", "use-argspec-type-path",
                  "use-compat-six")


def test_ansible_test_sanity_passes_the_offline_tests(tmp_path: Path) -> None:
    # ansible-test writes tests/output into the collection: a copy keeps the checkout clean
    copy = tmp_path / "ansible_collections" / "bgci" / "deploy"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    argv = [ansible_test(), "sanity", "--python", f"{sys.version_info[0]}.{sys.version_info[1]}"]
    for name in OFFLINE_SANITY:
        argv += ["--test", name]
    proc = subprocess.run(argv, cwd=copy, env=clean_env({"HOME": str(tmp_path)}),
                          capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for name in OFFLINE_SANITY:
        assert f'Running sanity test "{name}"' in output, output
