"""The import graph of the yolactpp package, read from the source (nothing is imported).

Every ``import`` / ``from ... import`` of a yolactpp module counts, at module level or inside a
function (a function-level import still ties the two modules together), and so does
``importlib.import_module("yolactpp....")`` with a literal name, and the lazy re-exports of a package
``__init__`` (a module name written as a string there, e.g. ``_EXPORTS = {"YolactPP": "yolactpp.model"}``:
the attribute imports it on first use); imports under
``if TYPE_CHECKING:`` do not (they never run). ``from yolactpp.x import y`` where ``y`` is a
submodule is an edge to ``yolactpp.x.y``. The parent packages Python imports on the way
(``yolactpp.a`` for ``yolactpp.a.b``) are not edges: a package ``__init__`` that re-exports its
submodules would otherwise make every package a cycle of its own.

    python scripts/import_graph.py            # modules, edges, cycles, longest chain
    python scripts/import_graph.py --cycles   # also list each cycle's modules

``tests/test_import_graph.py`` uses :func:`import_graph` and :func:`cycles` to keep the package free
of cycles other than registration (the registry imports its built-in models and backbones by name).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

PACKAGE = "yolactpp"
SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Module name -> source file, for every ``.py`` file of the package."""
    out: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # "from pkg import sub" imports the submodule; "from pkg import name" the module holding it
        return [f"{prefix}.{alias.name}" for alias in node.names]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, (ast.Name, ast.Attribute))
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def _lazy_exports(tree: ast.AST, files: dict[str, Path]) -> set[str]:
    return {
        node.value
        for node in _runtime_nodes(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in files
    }


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package modules it imports at run time."""
    files = module_files(src)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if is_package:
            targets.update(_lazy_exports(tree, files))
        for node in _runtime_nodes(tree):
            for name in _imported(node, module, is_package):
                parts = name.split(".")
                # the longest prefix that is a module: "yolactpp.x.func" -> "yolactpp.x"
                named = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in files), None)
                if named is not None:
                    targets.add(named)
        targets.discard(module)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found, key=lambda c: (-len(c), c))


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest import chain ``a -> b -> ...`` over the graph with each cycle merged into one node."""
    component_of: dict[str, str] = {}
    for component in cycles(graph):
        for m in component:
            component_of[m] = "{" + ", ".join(component) + "}"
    dag: dict[str, set[str]] = {}
    for v, targets in graph.items():
        cv = component_of.get(v, v)
        dag.setdefault(cv, set()).update(component_of.get(w, w) for w in targets if component_of.get(w, w) != cv)
    memo: dict[str, list[str]] = {}

    def chain(v: str) -> list[str]:
        if v not in memo:
            best = max((chain(w) for w in dag.get(v, ())), key=len, default=[])
            memo[v] = [v, *best]
        return memo[v]

    return max((chain(v) for v in sorted(dag)), key=len, default=[])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", action="store_true", help="list the modules of each cycle")
    parser.add_argument("--src", type=Path, default=SRC, help="the src/ folder to read (default: this checkout's)")
    args = parser.parse_args(argv)
    graph = import_graph(args.src)
    found = cycles(graph)
    chain = longest_chain(graph)
    print(f"modules:       {len(graph)}")
    print(f"import edges:  {sum(len(t) for t in graph.values())}")
    print(f"cycles:        {len(found)} (sizes {[len(c) for c in found]})")
    on_chain = sum(node.count(", ") + 1 if node.startswith("{") else 1 for node in chain)
    print(f"longest chain: {len(chain)} nodes ({on_chain} modules, a cycle counting as all its modules): {' -> '.join(chain)}")
    if args.cycles:
        for component in found:
            print("cycle:", ", ".join(component))


if __name__ == "__main__":
    main()
