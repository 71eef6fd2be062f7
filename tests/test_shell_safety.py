"""No command bgci runs is built by pasting input into a string for a shell: every process, exec
and container command is an argv list; a shell (`sh -c SCRIPT`) runs only a script that is a
constant of bgci (data reaches it as "$1", "$@") or a command the user wrote for a shell on
purpose (hooks.*.command, build.test_command, platform.command), each listed below with why.

A static check over bgci/ (the AST, not grep: it sees through line breaks and aliases of the
call). Its behavioural twin is tests/e2e/test_faults_security.py: values full of shell
metacharacters reach their target literally."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

BGCI = Path(__file__).resolve().parents[1] / "bgci"

# Calls that start a process or run a command: name -> index of the argv argument.
SPAWN = {
    "run": 0, "Popen": 0, "call": 0, "check_call": 0, "check_output": 0,  # subprocess
    "exec_run": 0, "execute": 1,  # a container's exec; RouterHost.execute(spec, argv)
    "posix_spawn": 1, "posix_spawnp": 1, "execv": 1, "execve": 1, "execvp": 1, "execvpe": 1,
    "spawn": 0,  # bgci.platforms.detached.spawn(argv, ...)
}
# Always a shell, whatever they are given.
SHELL_CALLS = {"system", "popen", "getoutput", "getstatusoutput"}
SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash"}

# `sh -c SCRIPT` where SCRIPT is a command the user wrote to be run by a shell (the config says
# so). file (relative to bgci/) and the script's source -> what it is.
USER_SHELL_COMMANDS = {
    ("commands.py", "command"): "hooks.<name>.command and verify.smoke_command, run on the runner",
    ("stages/build.py", "command"): "build.test_command",
    ("docker_engine.py", "command"): "a hook with run_in = \"green\" (one-off container)",
    ("platforms/process.py", "command"): "a hook with run_in = \"green\" (the release's venv)",
    ("platforms/process.py", "command.replace('{port}', str(port)).replace('{host}', host)"):
        "platform.command with the port bgci picked (an int) in place of {port} and the colour's "
        "address (platform.hosts: an IP address, checked when the config is loaded) in place of "
        "{host}",
    ("routers/nginx.py", "config.router.check_command or DEFAULT_CHECK"): "router.check_command",
    ("routers/nginx.py", "config.router.reload_command or DEFAULT_RELOAD"):
        "router.reload_command",
}


@dataclass
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _is_text(node: ast.expr) -> bool:
    """An expression that builds a string: a literal, an f-string, +/% on strings, .format/.join."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _is_text(node.left) or _is_text(node.right)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("format", "join", "replace", "strip"))


def _constants(tree: ast.Module) -> set[str]:
    """Module-level names bound once to a string literal (bgci's own shell scripts)."""
    counts: dict[str, int] = {}
    literal: set[str] = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            if isinstance(target, ast.Name):
                counts[target.id] = counts.get(target.id, 0) + 1
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, (ast.Constant, ast.JoinedStr, ast.BinOp))
                and all(isinstance(n, ast.Constant) for n in ast.walk(node.value)
                        if isinstance(n, ast.expr) and not isinstance(n, (ast.JoinedStr, ast.BinOp,
                                                                          ast.FormattedValue)))):
            literal.add(node.targets[0].id)
    return {name for name in literal if counts.get(name) == 1}


def _bgci_script(node: ast.expr, constants: set[str], module_names: set[str]) -> bool:
    """A script that is bgci's own: a literal, a module constant, or one formatted with constants."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id in constants
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format" and isinstance(node.func.value, ast.Name)
            and node.func.value.id in constants):
        values = [*node.args, *(k.value for k in node.keywords)]
        return all(isinstance(v, ast.Constant) or (isinstance(v, ast.Name) and v.id in module_names)
                   for v in values)
    return False


def _check_argv(argv: ast.expr, rel: str, line: int, constants: set[str],
                module_names: set[str]) -> list[Finding]:
    where = f"bgci/{rel}:{line}"
    if _is_text(argv):
        return [Finding(where, f"command given as a string ({ast.unparse(argv)[:80]}): "
                               "pass an argv list")]
    if not isinstance(argv, (ast.List, ast.Tuple)):
        return []  # a variable holding a list: built elsewhere, where its elements are checked
    items = argv.elts
    if (len(items) >= 3 and isinstance(items[0], ast.Constant) and items[0].value in SHELLS
            and isinstance(items[1], ast.Constant) and items[1].value == "-c"):
        script = items[2]
        source = ast.unparse(script)
        if not (_bgci_script(script, constants, module_names)
                or (rel, source) in USER_SHELL_COMMANDS):
            return [Finding(where, f"`{items[0].value} -c {source}`: a shell script built from "
                                   "data; make it a constant and pass the data as its "
                                   "arguments (\"$1\"), or list a command the user writes for a "
                                   "shell in USER_SHELL_COMMANDS")]
    return []


@functools.cache
def _all_constants() -> frozenset[str]:
    """String constants of every bgci module (a script may be imported from another one)."""
    found: set[str] = set()
    for path in sorted(BGCI.rglob("*.py")):
        found |= _constants(ast.parse(path.read_text(encoding="utf-8")))
    return frozenset(found)


def findings(path: Path, source: str | None = None) -> list[Finding]:
    rel = path.relative_to(BGCI).as_posix()
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    constants = _constants(tree) | (_all_constants() if source is None else set())
    module_names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}
    found: list[Finding] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        where = f"bgci/{rel}:{node.lineno}"
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                               and keyword.value.value is False):
                found.append(Finding(where, f"shell={ast.unparse(keyword.value)}"))
            if keyword.arg in ("command", "cmd", "args", "argv"):
                found += _check_argv(keyword.value, rel, node.lineno, constants, module_names)
        if name in SHELL_CALLS and isinstance(node.func, ast.Attribute) and \
                ast.unparse(node.func.value) in ("os", "subprocess", "commands"):
            found.append(Finding(where, f"{ast.unparse(node.func)}() always runs a shell"))
        if name in SPAWN and len(node.args) > SPAWN[name]:
            found += _check_argv(node.args[SPAWN[name]], rel, node.lineno, constants, module_names)
    return found


SOURCES = sorted(BGCI.rglob("*.py"))


def test_the_check_sees_bgci_sources() -> None:
    assert len(SOURCES) > 20 and BGCI / "hooks.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(BGCI).as_posix())
def test_no_command_is_built_for_a_shell(path: Path) -> None:
    problems = findings(path)
    assert not problems, "\n".join(map(str, problems))


def test_user_shell_commands_listed_still_exist() -> None:
    """Each exception above names a script that is still there (no stale allowances)."""
    seen: set[tuple[str, str]] = set()
    for path in SOURCES:
        rel = path.relative_to(BGCI).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 3 and isinstance(
                    node.elts[1], ast.Constant) and node.elts[1].value == "-c":
                seen.add((rel, ast.unparse(node.elts[2])))
    assert set(USER_SHELL_COMMANDS) <= seen, set(USER_SHELL_COMMANDS) - seen


@pytest.mark.parametrize("source, bad", [
    ('import subprocess\nsubprocess.run("ls " + d, shell=True)\n', True),
    ("import subprocess\nsubprocess.run(f'ls {d}')\n", True),
    ("import os\nos.system('ls')\n", True),
    ("import subprocess\nsubprocess.run(['sh', '-c', f'ls {d}'])\n", True),
    ("import subprocess\nsubprocess.run(['sh', '-c', 'ls \"$1\"', 'sh', d])\n", False),
    ("S = 'ls \"$1\"'\nimport subprocess\nsubprocess.run(['sh', '-c', S, 'sh', d])\n", False),
    ("c.exec_run('touch ' + d)\n", True),
    ("c.exec_run(['touch', d])\n", False),
    ("client.containers.create(img, command=f'echo {d}')\n", True),
])
def test_the_check_itself(source: str, bad: bool) -> None:
    found = findings(BGCI / "probe.py", source)  # a made-up module: nothing is written
    assert bool(found) is bad, found
