"""The package layout holds: every module imports, no import circle among worker's modules, and
services/ stays grouped by flow (outbound, inbound, clinical, records, read, demo).

The import graph is drawn from the source (`ast`): imports a module runs when it is loaded, i.e.
at module level, outside functions and outside `if TYPE_CHECKING:`. An import inside a function
is the usual way to defer a heavy dependency; it is not an edge here, but a circle hidden that
way would still show up below only if it also exists at module level, which is the one that
breaks imports. A package's `__init__` is not counted as imported by its submodules (Python runs
it first, but a package that re-exports its submodules is not a circle).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"

#: Not imported here: alembic's environment and revisions run only under alembic; `__main__`
#: runs the command line.
NOT_IMPORTED = ("worker.store.migrations", "worker.cli.__main__")

#: Modules deliberately left directly in worker/services/, shared by every flow.
SHARED_SERVICES = {
    "__init__.py": "the package",
    "errors.py": "the errors every service raises and every entry point turns into its own words",
    "runtime.py": "the objects a running process shares (settings, sessions, channels), built by "
    "each entry point and handed to every service",
    "input_limits.py": "the limits on free text, the same for every entry point and every flow",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(WORKER.rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _top_level_imports(node.body)
            found += _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                found += _top_level_imports(block)
            for handler in node.handlers:
                found += _top_level_imports(handler.body)
        elif isinstance(node, ast.With):
            found += _top_level_imports(node.body)
    return found


def _all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import, deferred ones inside functions too, except under `if TYPE_CHECKING:`."""
    hidden = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for inner in ast.walk(node)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in hidden
    ]


def _edges(name: str, path: Path, deferred: bool = False) -> set[str]:
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in _all_imports(tree) if deferred else _top_level_imports(tree.body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = name.split(".")
            if not is_package:
                anchor = anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != name} | (
        {name} if name in targets else set()
    )


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    return {name: _edges(name, path, deferred) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_real_edges() -> None:
    """Guard against a graph that is empty by mistake (which would have no circle)."""
    graph = import_graph()
    assert "worker.celery_app" in graph["worker.tasks"]
    assert "worker.cli.common" in graph["worker.cli.patients"]
    assert "worker.cli.patients" in graph["worker.cli.main"]
    assert "worker.web.api.common" in graph["worker.web.api.patients"]
    assert "worker.services.outbound.send" in graph["worker.services.outbound.send_now"]
    # Imports under TYPE_CHECKING are not edges.
    assert "worker.services.outbound.lease" not in graph["worker.tasks"]


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]


def test_no_import_circle_among_worker_modules() -> None:
    assert cycles(import_graph()) == []


#: Circles closed only by an import deferred into a function (they load, but read badly).
KNOWN_DEFERRED_CIRCLES = [
    # keywords.detect_crisis asks risk for its phrase list; risk builds on keywords' normaliser.
    ["worker.domain.keywords", "worker.domain.risk"],
]


def test_no_new_circle_through_deferred_imports() -> None:
    assert cycles(import_graph(deferred=True)) == KNOWN_DEFERRED_CIRCLES


def test_services_holds_flow_packages_not_flat_modules() -> None:
    services = WORKER / "services"
    flat = sorted(p.name for p in services.glob("*.py"))
    assert [f for f in flat if f not in SHARED_SERVICES] == []
    flows = sorted(p.name for p in services.iterdir() if (p / "__init__.py").exists())
    assert flows == ["clinical", "demo", "inbound", "outbound", "read", "records"]


@pytest.mark.parametrize(
    "name", [m for m in MODULES if not m.startswith(NOT_IMPORTED)], ids=lambda m: m
)
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)
