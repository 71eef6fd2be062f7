"""The GitLab template as a CI/CD component (templates/bgci.yml), checked the way GitLab's rules
for components describe them, without a GitLab: the file is the remote include's, byte for byte;
its header is only `spec:` with described, typed inputs; every input it declares is used and every
input it uses is declared; it sets no global keyword (a component adds jobs, never changes the
including pipeline's defaults); and templates/README.md documents each input. That it runs is
shown by tests/integrations (gitlab-ci-local resolves `component:` of its own project)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "templates" / "bgci.yml"
INCLUDE = REPO / "ci-templates" / "gitlab" / "bgci.yml"
# Keywords that configure the whole pipeline: a component must not set them (GitLab's guidance
# for component authors), or including it would change jobs it does not own.
GLOBAL_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services",
                   "cache", "before_script", "after_script"}
INPUT_TYPES = {"string", "number", "boolean", "array"}


def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    header, body = yaml.safe_load_all(COMPONENT.read_text(encoding="utf-8"))
    return header, body


def test_the_component_is_the_remote_include_byte_for_byte() -> None:
    assert COMPONENT.read_bytes() == INCLUDE.read_bytes(), \
        "templates/bgci.yml and ci-templates/gitlab/bgci.yml differ: change both (cp one over the other)"


def test_the_component_has_a_valid_name_and_a_spec_only_header() -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", COMPONENT.stem)
    header, _ = documents()
    assert list(header) == ["spec"] and list(header["spec"]) == ["inputs"]


def test_every_input_is_described_and_typed() -> None:
    header, _ = documents()
    for name, spec in header["spec"]["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", name), name
        assert set(spec) <= {"description", "default", "type", "options", "regex"}, name
        assert spec.get("description"), f"input {name} has no description"
        kind = spec.get("type", "string")
        assert kind in INPUT_TYPES, name
        if "options" in spec:
            assert kind == "string" and spec.get("default") in spec["options"], name
        if kind == "boolean" and "default" in spec:
            assert isinstance(spec["default"], bool), name
        if "default" not in spec:
            assert spec["description"].startswith("Required"), f"input {name} is required: say so"


def test_every_declared_input_is_used_and_every_used_input_is_declared() -> None:
    header, _ = documents()
    declared = set(header["spec"]["inputs"])
    body = COMPONENT.read_text(encoding="utf-8").split("\n---\n", 1)[1]
    used = set(re.findall(r"\$\[\[\s*inputs\.([a-z0-9_-]+)\s*\]\]", body))
    assert used == declared
    assert not re.search(r"\$\[\[(?!\s*inputs\.)", body), "only inputs are interpolated"


def test_the_component_adds_jobs_and_sets_no_global_keyword() -> None:
    _, body = documents()
    assert not GLOBAL_KEYWORDS & set(body), GLOBAL_KEYWORDS & set(body)
    for name, job in body.items():
        assert isinstance(job, dict), name
        if not name.startswith("."):  # hidden: a template for extends
            assert "script" in job or "extends" in job, f"{name} is not a job"
            assert name.startswith("bgci-"), f"{name}: the component's jobs are named bgci-*"


def test_the_component_readme_documents_every_input_and_the_versions() -> None:
    readme = (REPO / "templates" / "README.md").read_text(encoding="utf-8")
    header, _ = documents()
    for name in header["spec"]["inputs"]:
        assert re.search(rf"^\| `{re.escape(name)}` \|", readme, re.MULTILINE), name
    assert "component: $CI_SERVER_FQDN/" in readme and "## Versions" in readme
