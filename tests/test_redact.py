"""Secrets from the environment never appear in logs, JUnit or JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bgci.redact import Redactor

SECRET = "s3cr3t-Pa55w0rd-xyz"


def test_values_of_secret_looking_and_listed_variables_are_masked() -> None:
    r = Redactor({"DB_PASSWORD": SECRET, "GITHUB_TOKEN": "ghp_abcdef", "PLAIN": "visible",
                  "MY_THING": "listed-value", "BGCI_SECRETS": "MY_THING", "SHORT_TOKEN": "ab"})
    text = f"url=postgres://u:{SECRET}@db token=ghp_abcdef plain=visible mine=listed-value ab"
    assert r.text(text) == "url=postgres://u:***@db token=*** plain=visible mine=*** ab"
    assert r.deep({"a": [SECRET, 1], "b": {"c": "ghp_abcdef"}}) == {"a": ["***", 1], "b": {"c": "***"}}


def test_no_secret_no_change() -> None:
    assert Redactor({"PATH": "/bin"}).text("/bin") == "/bin"


def test_secret_printed_by_a_failing_test_command_stays_out_of_every_report(tmp_path: Path) -> None:
    (tmp_path / "bgci.toml").write_text(
        'app = "shop"\n[build]\ntest_command = "echo connecting with $DB_PASSWORD; exit 1"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BGCI_", "GITHUB_", "GITLAB_"))}
    env.update(DB_PASSWORD=SECRET, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(tmp_path / "out"),
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary"))
    proc = subprocess.run([sys.executable, "-m", "bgci", "-v", "--json", "build", "--tag", "t1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 1, proc.stderr
    reports = tmp_path / "bgci-reports"
    junit = (reports / "build.xml").read_text()
    assert "connecting with ***" in junit  # the output is there, masked
    everything = [proc.stdout, proc.stderr, junit, (reports / "build.json").read_text(),
                  (reports / "bgci.env").read_text(), (tmp_path / "out").read_text(),
                  (tmp_path / "summary").read_text()]
    for text in everything:
        assert SECRET not in text
    assert json.loads(proc.stdout)["exit_code"] == 1


def test_secret_looking_words_in_a_command_are_found() -> None:
    from bgci.redact import secrets_in_command

    found = secrets_in_command("DEPLOY_TOKEN=tok-12345 ./notify --password hunter22 --user bob "
                               "STRIPE_KEY=sk_live_abc --api-key=k-987654 PLAIN=visible")
    assert found == {"tok-12345", "hunter22", "sk_live_abc", "k-987654"}


def test_values_added_later_are_masked_too() -> None:
    r = Redactor({})
    r.add({"pw-from-config"})
    assert r.text("db pw-from-config") == "db ***"


def test_the_password_of_a_url_is_a_secret_whatever_the_variable_is_called() -> None:
    redactor = Redactor({"DATABASE_URL": "postgres://shop:hunter2-long@db:5432/shop",
                         "HOMEPAGE": "https://example.invalid/a:b@c"})
    assert redactor.text("connecting to postgres://shop:hunter2-long@db:5432/shop") == \
        "connecting to postgres://shop:***@db:5432/shop"
    assert redactor.text("https://example.invalid/a:b@c") == "https://example.invalid/a:b@c"
