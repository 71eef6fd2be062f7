"""The bgci.deploy Ansible collection, checked without Ansible: what ansible-test's validate-modules
checks of a module (its DOCUMENTATION, EXAMPLES and RETURN parse as YAML, and the documented options
are the argument_spec's, with the same types, defaults, choices and no_log), the role's argument
specs against its defaults and tasks, the collection's metadata, and the module's own logic over a
stand-in for AnsibleModule: the argv it runs (a list, each value attached to its option), the
environment it passes secrets in, check mode, and how bgci's JSON becomes changed / failed.

That it runs is shown by tests/e2e/test_ansible.py with the real ansible-playbook; the sanity tests
of ansible-test that work offline run there too."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import yaml

from bgci import __version__
from bgci.stages import WRAPPER_STAGES

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ci-templates" / "ansible" / "ansible_collections" / "bgci" / "deploy"
MODULE = COLLECTION / "plugins" / "modules" / "stage.py"
ROLE = COLLECTION / "roles" / "pipeline"
# option names validate-modules wants an explicit no_log for (its "no_log_needed" rule, roughly)
SECRET_NAME = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
RETURN_TYPES = {"str", "int", "bool", "float", "list", "dict", "complex", "raw", "path"}


class Exited(Exception):
    def __init__(self, failed: bool, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", ""))
        self.failed, self.result = failed, result


class FakeModule:
    """AnsibleModule as far as stage.py uses it: params with the spec's defaults applied, check
    mode, run_command (recorded, answering what the test says bgci printed), exit and fail."""

    answer: ClassVar[tuple[int, str, str]] = (0, "", "")
    given: ClassVar[dict[str, Any]] = {}
    check: ClassVar[bool] = False
    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, argument_spec: dict[str, Any], supports_check_mode: bool) -> None:
        assert supports_check_mode
        self.params = {name: spec.get("default") for name, spec in argument_spec.items()}
        self.params.update(self.given)
        self.check_mode = self.check
        self.warnings: list[str] = []

    def run_command(self, args: Any, **kw: Any) -> tuple[int, str, str]:
        assert isinstance(args, list) and all(isinstance(a, str) for a in args), args
        assert "use_unsafe_shell" not in kw
        self.calls.append({"argv": args, **kw})
        return self.answer

    def get_bin_path(self, name: str, required: bool = False) -> str:
        return f"/usr/bin/{name}"

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def exit_json(self, **result: Any) -> None:
        raise Exited(False, result)

    def fail_json(self, **result: Any) -> None:
        raise Exited(True, result)


def load_module() -> ModuleType:
    """stage.py with a stand-in ``ansible.module_utils.basic`` (ansible-core is not needed)."""
    basic = ModuleType("ansible.module_utils.basic")
    basic.AnsibleModule = FakeModule  # type: ignore[attr-defined]
    stubs = {"ansible": ModuleType("ansible"), "ansible.module_utils": ModuleType("x"),
             "ansible.module_utils.basic": basic}
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location("bgci_ansible_stage", MODULE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


STAGE = load_module()


def doc(name: str) -> Any:
    return yaml.safe_load(getattr(STAGE, name))


# -- what validate-modules checks ------------------------------------------------------------------
def test_documentation_matches_the_argument_spec() -> None:
    documentation = doc("DOCUMENTATION")
    assert documentation["module"] == MODULE.stem
    assert documentation["short_description"] and documentation["description"]
    assert documentation["author"] and documentation["version_added"]
    options, spec = documentation["options"], STAGE.ARGUMENT_SPEC
    assert set(options) == set(spec), "documented options must be exactly the argument_spec's"
    for name, entry in spec.items():
        documented = options[name]
        assert documented["description"], name
        assert documented["type"] == entry["type"], name
        assert documented.get("required", False) == entry.get("required", False), name
        assert documented.get("default") == entry.get("default"), name
        assert documented.get("choices") == entry.get("choices"), name
        assert documented.get("elements") == entry.get("elements"), name
        if SECRET_NAME.search(name):
            assert entry.get("no_log") is True, f"{name} looks secret: no_log must be set"


def test_the_module_runs_exactly_the_stages_the_other_wrappers_run() -> None:
    assert list(WRAPPER_STAGES) == STAGE.STAGES
    stage_specific = {stage for stages in STAGE.STAGE_OPTIONS.values() for stage in stages}
    assert stage_specific <= set(WRAPPER_STAGES)


def test_examples_parse_and_use_only_documented_options() -> None:
    options = set(STAGE.ARGUMENT_SPEC)
    tasks = doc("EXAMPLES")
    assert isinstance(tasks, list) and tasks
    for task in tasks:
        args = task["bgci.deploy.stage"]
        assert set(args) <= options, task
        assert args["stage"] in STAGE.STAGES and "chdir" in args


def test_return_values_are_documented() -> None:
    returned = doc("RETURN")
    for name, entry in returned.items():
        assert entry["description"] and entry["returned"], name
        assert entry["type"] in RETURN_TYPES, name
    # every fact the module returns, under the one spelling of the JSON report
    assert {*STAGE.FACTS, "stage", "app", "status", "exit_code", "rc", "message", "dry_run",
            "checks", "extra", "stages", "report", "cmd", "stderr", "ansible_facts"} <= set(returned)


def test_the_module_has_the_shebang_ansible_test_asks_for_and_plain_quotes() -> None:
    text = MODULE.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/python\n")
    assert "\t" not in text and not re.search("[\u2018\u2019\u201c\u201d]", text)


# -- the collection and the role ---------------------------------------------------------------------
def test_the_collection_is_named_by_its_path_and_versioned_with_bgci() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == (COLLECTION.parent.name, COLLECTION.name)
    assert COLLECTION.parent.parent.name == "ansible_collections"
    assert galaxy["version"] == __version__, "one version for bgci and its wrappers"
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=")


def tasks_of(path: Path) -> list[dict[str, Any]]:
    found = yaml.safe_load(path.read_text())
    assert isinstance(found, list)
    return found


def test_the_roles_argument_specs_are_its_defaults_and_its_tasks_use_real_options() -> None:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert set(options) == set(defaults), "every variable has a default and a description"
    for name, entry in options.items():
        assert entry["description"] and entry["type"], name
        if "default" in entry:
            assert entry["default"] == defaults[name], name
    used = set(re.findall(r"\bbgci_[a-z_]+", (ROLE / "tasks" / "main.yml").read_text()))
    registered = {t["register"] for t in tasks_of(ROLE / "tasks" / "main.yml") if "register" in t}
    assert used <= set(options) | registered, used - set(options) - registered
    for path in (ROLE / "tasks" / "main.yml", COLLECTION / "playbooks" / "rollback.yml"):
        found = [t for t in tasks_of(path) for t in t.get("tasks", [t])]
        for task in found:
            if "bgci.deploy.stage" in task:
                assert set(task["bgci.deploy.stage"]) <= set(STAGE.ARGUMENT_SPEC), task


# -- the module's logic, over the stand-in --------------------------------------------------------
def result_doc(stage: str, **fields: Any) -> dict[str, Any]:
    return {"stage": stage, "app": "shop", "status": "passed", "exit_code": 0, "message": "",
            "changed": False, "dry_run": False, "live_color": "blue", "idle_color": "green",
            "color": "blue", "image": "shop:v1", "digest": "sha256:aa", "live_url": "http://l",
            "preview_url": "http://p", "checks": [], "extra": {}, **fields}


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    """``run(params, stdout_docs, rc=0, check=False)``: the module's result (Exited)."""

    def call(params: dict[str, Any], docs: list[dict[str, Any]], rc: int = 0,
             check: bool = False) -> Exited:
        FakeModule.given = {"chdir": str(tmp_path), **params}
        FakeModule.answer = (rc, "\n".join(json.dumps(d, indent=2) for d in docs), "bgci log\n")
        FakeModule.check, FakeModule.calls = check, []
        with pytest.raises(Exited) as exited:
            STAGE.main()
        return exited.value

    yield call
    FakeModule.given, FakeModule.calls = {}, []


def test_values_reach_bgci_as_single_arguments_and_secrets_only_in_the_environment(
        run: Any, tmp_path: Path) -> None:
    out = run({"stage": "deploy-green", "image": "--force; rm -rf /", "lock_wait": 5.0,
               "set": {"switch.drain": 3, "verify.against_blue": True},
               "env": {"DOCKER_HOST": "ssh://deploy@app"},
               "secrets": {"BGCI_NOTIFY_URL": "https://hook/t0ken"}},
              [result_doc("deploy-green", changed=True)])
    call = FakeModule.calls[0]
    assert call["argv"] == ["/usr/bin/bgci", "--json", f"--reports={tmp_path}/bgci-reports",
                            "--set=switch.drain=3", "--set=verify.against_blue=true",
                            "deploy-green", "--image=--force; rm -rf /", "--lock-wait=5.0"]
    assert call["cwd"] == str(tmp_path)
    env = call["environ_update"]
    assert env["BGCI_NOTIFY_URL"] == "https://hook/t0ken" and env["DOCKER_HOST"] == "ssh://deploy@app"
    assert env["BGCI_SECRETS"].split(",")[-1] == "BGCI_NOTIFY_URL"
    assert env["BGCI_REPORTS_DIR"] == f"{tmp_path}/bgci-reports"
    assert "t0ken" not in json.dumps(out.result["cmd"])
    assert not out.failed and out.result["changed"] is True


def test_the_facts_and_changed_come_from_bgcis_json(run: Any) -> None:
    out = run({"stage": "switch", "digest": "sha256:aa"},
              [result_doc("switch", message="blue is already live; nothing to switch")])
    assert out.result["changed"] is False and not out.failed
    assert out.result["ansible_facts"]["bgci"] == {
        "app": "shop", "stage": "switch", "live_color": "blue", "idle_color": "green",
        "image": "shop:v1", "digest": "sha256:aa", "live_url": "http://l", "preview_url": "http://p"}
    assert out.result["report"].endswith("/bgci-reports/switch.xml")


def test_deploy_prints_four_results_and_changed_is_any_of_them(run: Any) -> None:
    docs = [result_doc(s, changed=(s == "switch")) for s in ("build", "deploy-green", "verify",
                                                            "switch")]
    out = run({"stage": "deploy"}, docs)
    assert out.result["changed"] is True and len(out.result["stages"]) == 4
    assert out.result["stage"] == "switch"


def test_a_stage_that_fails_fails_the_task_with_bgcis_message_and_exit_code(run: Any) -> None:
    failed = result_doc("verify", status="failed", exit_code=1, changed=True,
                        message="verification of green (shop:v2) failed: smoke::test_home")
    out = run({"stage": "verify"}, [failed], rc=1)
    assert out.failed and out.result["rc"] == 1 and out.result["changed"] is True
    assert out.result["msg"] == ("bgci verify failed (exit 1: a check failed): verification of "
                                 "green (shop:v2) failed: smoke::test_home")


def test_no_json_at_all_fails_with_bgcis_own_words(run: Any) -> None:
    FakeModule.answer = (2, "", "")
    out = run({"stage": "status", "args": ["--bogus"]}, [], rc=2)
    assert out.failed and "exited 2 without a JSON result" in out.result["msg"]


def test_check_mode_dry_runs_switch_and_rollback_and_runs_nothing_else(run: Any) -> None:
    out = run({"stage": "rollback"}, [result_doc("rollback", changed=True, dry_run=True)],
              check=True)
    assert FakeModule.calls[0]["argv"][-1] == "--dry-run"
    assert out.result["changed"] is True and out.result["dry_run"] is True
    for stage in ("build", "deploy-green", "verify", "retire", "down", "up", "deploy"):
        out = run({"stage": stage}, [], check=True)
        assert FakeModule.calls == [] and out.result["skipped"] is True
        assert out.result["changed"] is False and "has no --dry-run" in out.result["msg"]
    out = run({"stage": "status"}, [result_doc("status")], check=True)
    assert "--dry-run" not in FakeModule.calls[0]["argv"] and out.result["changed"] is False


def test_an_option_of_another_stage_is_refused_before_anything_runs(run: Any) -> None:
    out = run({"stage": "verify", "image": "shop:v2", "force": True}, [])
    assert out.failed and FakeModule.calls == []
    assert out.result["msg"] == ("options that do not apply to stage verify: image (for "
                                 "deploy-green); force (for switch, retire); nothing was run")
