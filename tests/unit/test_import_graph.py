"""No import cycle in ``src/shopflow``: between modules, and between its parts.

The graph is read from the source with :mod:`ast` (nothing is imported), and counts
every import that runs: module-level ones and those inside functions (the lazy imports
that keep heavy libraries out of import time still tie two modules together). Imports
under ``if TYPE_CHECKING:`` are left out: they never run.

* modules: ``shopflow.pipeline.stages`` importing ``shopflow.pipeline.model_stages`` which
  imports it back is a cycle, even when one side imports inside a function;
* parts (``shopflow.<part>``, a subpackage or a top-level module such as
  ``shopflow.settings``): ``monitoring`` importing ``pipeline`` while ``pipeline`` imports
  ``monitoring`` is a cycle, whichever modules do it.

A module importing its own package (``shopflow.quality.gate`` -> ``shopflow.quality``) is
Python's normal package loading, not a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

SRC = Path(__file__).resolve().parents[2] / "src"

#: Part-level cycles owned by other work, each with why it is still allowed. An entry
#: must name a cycle that exists: delete it once the cycle is gone.
KNOWN_PART_CYCLES: dict[frozenset[str], str] = {}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "shopflow").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Dotted names imported by ``module`` at run time (module level and in functions)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def visit(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.orelse:
                    yield from visit_one(statement)
                continue
            yield from visit_one(child)

    def visit_one(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                yield f"{source}.{alias.name}"
        yield from visit(node)

    yield from visit(ast.parse(path.read_text(), filename=str(path)))


@cache
def _module_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for name in _imported_names(module, path):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    return dict(graph)  # read once (cached); callers use .get


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _part_graph(modules: Mapping[str, set[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in modules.items():
        for target in targets:
            if _part(target) != _part(module) and target != "shopflow":
                graph[_part(module)].add(_part(target))
    return dict(graph)


def _cycles(graph: Mapping[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _explain(graph: Mapping[str, set[str]], cycle: frozenset[str]) -> str:
    return "; ".join(f"{a} -> {b}" for a in sorted(cycle) for b in sorted(graph.get(a, ()))
                     if b in cycle)


def test_the_graph_sees_lazy_imports_and_skips_type_checking_ones() -> None:
    graph = _module_graph()
    # function-level: the training stages import the training pipeline inside the stage
    stages = graph.get("shopflow.pipeline.model_stages", set())
    assert {"shopflow.training.pipeline", "shopflow.pipeline.vocabulary"} <= stages
    # TYPE_CHECKING only: a stage module names Settings in annotations, never imports it
    assert "shopflow.settings" not in graph.get("shopflow.pipeline.monitoring_stages", set())


def test_no_import_cycle_between_modules() -> None:
    graph = _module_graph()
    cycles = _cycles(graph)
    assert not cycles, "\n".join(_explain(graph, cycle) for cycle in cycles)


def test_no_import_cycle_between_parts() -> None:
    graph = _part_graph(_module_graph())
    cycles = set(_cycles(graph))
    new = [cycle for cycle in cycles if cycle not in KNOWN_PART_CYCLES]
    assert not new, "\n".join(_explain(graph, cycle) for cycle in new)
    stale = [sorted(cycle) for cycle in KNOWN_PART_CYCLES if cycle not in cycles]
    assert not stale, f"no longer a cycle, delete it from KNOWN_PART_CYCLES: {stale}"


def test_the_stage_layer_depends_on_monitoring_never_the_reverse() -> None:
    graph = _part_graph(_module_graph())
    assert "shopflow.monitoring" in graph.get("shopflow.pipeline", set())
    assert "shopflow.pipeline" not in graph.get("shopflow.monitoring", set())
    assert not graph.get("shopflow.errors") and not graph.get("shopflow.jsonable")
