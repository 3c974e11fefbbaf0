"""The package's shape: no import cycle between cachectl's modules (top-level or inside a
function), dependencies pointing one way (`cli -> render, ops -> store, layout, manifest ->
errors, config`), and no module too long to read.

Read from the source with `ast`, so a lazy import inside a function counts as much as one at
the top. Imports under `if TYPE_CHECKING:` are left out: they name types and run nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import cachectl

PACKAGE = Path(cachectl.__file__).parent
MAX_LINES = 900

# A cycle already known and owned elsewhere; each is allowed only exactly as listed, so a new
# module joining it still fails.
KNOWN_CYCLES: set[frozenset[str]] = {
    # the decorator and the clients import each other inside functions (the clients' shared
    # base offers `cache.cached`, the decorator makes the default APICache): still to break
    frozenset(
        {
            "cachectl.library.aio",
            "cachectl.library.base",
            "cachectl.library.client",
            "cachectl.library.decorator",
        }
    ),
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["cachectl", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, package: str, modules: Collection[str]) -> list[str]:
    """Every dotted name imported anywhere in `tree`, except under `if TYPE_CHECKING:`.
    `from pkg import x` names `pkg.x` when that is one of `modules`, else `pkg`."""
    names = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                names.append(full if full in modules else module)
        todo.extend(ast.iter_child_nodes(node))
    return names


def import_graph() -> dict[str, set[str]]:
    """For each cachectl module, the cachectl modules it imports (a package's `__init__` is
    the package's name; `from pkg import mod` is an import of `pkg.mod`)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = _imported_names(ast.parse(path.read_text(), str(path)), package, modules)
        targets = {i for i in imported if i in modules}
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
    return "\n  ".join([", ".join(component), *edges])


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_lazy_imports_count_and_type_checking_imports_do_not():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from cachectl.config import Settings\n"
        "def f():\n    from cachectl import layout\n    from .store import Store\n"
    )
    names = _imported_names(tree, "cachectl", {"cachectl.layout", "cachectl.store"})
    assert "cachectl.layout" in names
    assert "cachectl.store" in names
    assert "cachectl.config" not in names


def test_no_import_cycle_between_cachectl_modules():
    graph = import_graph()
    assert "cachectl.layout" in graph["cachectl.config"]  # the graph sees real imports
    new = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(_describe(c, graph) for c in new)


def test_dependencies_point_one_way():
    """ops never imports typer, rich, the CLI or the renderers; nothing below the CLI imports
    it; render never imports the CLI."""
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = _imported_names(ast.parse(path.read_text(), str(path)), package, modules)
        tops = {i.split(".")[0] for i in imported}
        if name.startswith("cachectl.ops"):
            wrong += [f"{name} imports {t}" for t in sorted(tops & {"typer", "rich", "click"})]
            wrong += [
                f"{name} imports {i}"
                for i in imported
                if i.startswith(("cachectl.cli", "cachectl.render"))
            ]
        if not name.startswith(("cachectl.cli", "cachectl.__main__")):
            wrong += [f"{name} imports {i}" for i in imported if i.startswith("cachectl.cli")]
    assert not wrong, "\n".join(wrong)


def test_no_module_is_longer_than_the_limit():
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them along their seams): {long}"


def test_a_command_module_imports_no_other_command_module():
    """Options and helpers two commands share live in cli.options / cli.context (completers in
    cli.completion), not in one of the commands' modules."""
    shared = {
        "cachectl.cli.context",
        "cachectl.cli.options",
        "cachectl.cli.numbers",
        "cachectl.cli.completion",  # the completers commands hook their options to
    }
    graph = import_graph()
    wrong = [
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name.startswith("cachectl.cli.") and name != "cachectl.cli.app"
        for target in sorted(targets)
        if target.startswith("cachectl.cli.") and target not in shared
    ]
    assert not wrong, "\n".join(wrong)
