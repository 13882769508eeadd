"""The package's import graph: no cycles, and the model layer imports nothing from training, eval or UI.

The graph is read from the source (``ast``), so it sees every ``import`` -- at module top and inside
functions alike (a cycle through a function-level import is still a cycle in the design) -- except those
under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stchat"
# The model layer is what everything else builds on: it must load without them.
LAYER_RULES = {"stchat.model": ("stchat.train", "stchat.eval", "stchat.ui", "stchat.commands")}


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The stchat modules ``name`` imports (``from stchat.x import y`` counts ``stchat.x.y`` when that
    is a module, else ``stchat.x``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("stchat"):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.startswith("stchat"):
                for alias in node.names:
                    add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_graph_reader_sees_a_cycle_and_type_checking_imports_are_skipped(tmp_path: Path) -> None:
    pkg = tmp_path / "stchat"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from stchat.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from stchat import a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from stchat import a\n")
    known = {"stchat": pkg / "__init__.py", "stchat.sub": pkg / "sub" / "__init__.py",
             "stchat.a": pkg / "a.py", "stchat.sub.b": pkg / "sub" / "b.py", "stchat.c": pkg / "c.py"}
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert graph["stchat.a"] == {"stchat.sub.b"} and graph["stchat.sub.b"] == {"stchat.a"}
    assert graph["stchat.c"] == set()
    assert cycles(graph) == [["stchat.a", "stchat.sub.b"]]


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("layer", sorted(LAYER_RULES))
def test_layers_import_only_downwards(layer: str) -> None:
    graph = import_graph()
    bad = sorted(
        f"{mod} -> {dep}"
        for mod, deps in graph.items() if mod == layer or mod.startswith(layer + ".")
        for dep in deps if dep.startswith(LAYER_RULES[layer])
    )
    assert not bad, f"{layer} must not import these layers: " + ", ".join(bad)


def test_the_task_table_is_a_leaf_of_the_grounding_stack() -> None:
    # stchat.tasks is read by every layer, so it may only import the templates, parsers and errors.
    assert import_graph()["stchat.tasks"] <= {"stchat.parsers", "stchat.errors", "stchat.processing",
                                              "stchat.processing.templates"}
