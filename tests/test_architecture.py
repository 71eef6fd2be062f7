"""The shape of bgci's imports: every arrow points one way.

Every ``import`` of a bgci module counts, wherever it stands (top level, inside a function, under
``if TYPE_CHECKING``): a deferred import hides a cycle from Python, not from a reader. An arrow
goes to the module named (``from bgci.routers import caddy``: to ``bgci.routers.caddy``; ``from
bgci.routers import router_spec``: to the package ``bgci.routers``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BGCI = Path(__file__).resolve().parents[1] / "bgci"


def module_name(path: Path) -> str:
    parts = path.relative_to(BGCI.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(BGCI.rglob("*.py"))}


def _known(name: str) -> set[str]:
    """``name`` when it is a bgci module (not the ``bgci`` package itself, which holds nothing)."""
    return {name} & set(MODULES) - {"bgci"}


def imports_of(name: str) -> set[str]:
    """The bgci modules ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found |= _known(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            modules = {f"{base}.{alias.name}" for alias in node.names} & set(MODULES)
            names = [alias.name for alias in node.names if f"{base}.{alias.name}" not in modules]
            found |= modules | (_known(base) if names else set())
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_code() -> None:
    # a guard against a reader that sees nothing: these arrows exist
    assert "bgci.ports" in GRAPH["bgci.stages.switch"] | GRAPH["bgci.deployment"]
    assert "bgci.routers" in GRAPH["bgci.routers.haproxy"]
    assert "bgci.platforms.docker" in GRAPH["bgci.registry"]  # inside a function, still counted


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_bgci_modules() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles (each a set of modules that reach each other):\n" + "\n".join(
        " <-> ".join(c) for c in found)


LEAVES = ("bgci.ports", "bgci.model", "bgci.errors", "bgci.settings", "bgci.log",
          "bgci.command_line")
ADAPTER_FAMILIES = ("bgci.platforms", "bgci.routers", "bgci.hosts", "bgci.state", "bgci.ci")


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_ports_and_values_import_no_adapter(leaf: str) -> None:
    reached = set()
    todo = [leaf]
    while todo:
        for nxt in GRAPH[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    adapters = sorted(m for m in reached if m.startswith(ADAPTER_FAMILIES))
    assert not adapters, f"{leaf} reaches adapters: {adapters}"


def _family(name: str) -> str:
    return next((f for f in ADAPTER_FAMILIES if name == f or name.startswith(f + ".")), "")


def test_an_adapter_never_imports_another_adapter() -> None:
    """Adapters import the ports and shared helpers; only bgci.registry knows them all. Within a
    family an adapter may use its own package's helpers (``routers/__init__``, nginx_conf ...),
    never another family's adapter."""
    wrong = []
    for name, targets in GRAPH.items():
        family = _family(name)
        if not family or name == family:
            continue
        for target in targets:
            other = _family(target)
            if other and other != family and target != other:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "\n".join(sorted(wrong))
