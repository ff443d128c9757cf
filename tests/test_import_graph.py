"""The package's modules import each other without cycles, registration aside.

A cycle makes import order matter and ties layers together (a function-level import still does);
``scripts/import_graph.py`` reads the graph from the source, so these tests need no imports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The registry imports its built-in models and backbones by name on first lookup, and they register
#: themselves with it: the one cycle the design wants.
REGISTRATION = {"yolactpp.registry", "yolactpp.zoo", "yolactpp.backbone.resnet", "yolactpp.backbone.darknet"}


@pytest.fixture(scope="module")
def graph_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles_but_registration(graph_tool: ModuleType) -> None:
    graph = graph_tool.import_graph(ROOT / "src")
    found = [set(c) for c in graph_tool.cycles(graph)]
    unexpected = [sorted(c) for c in found if not c <= REGISTRATION]
    assert not unexpected, f"import cycles (break them; see docs/architecture.md): {unexpected}"


def test_the_graph_sees_every_kind_of_import(graph_tool: ModuleType) -> None:
    graph = graph_tool.import_graph(ROOT / "src")
    assert "yolactpp.network" in graph["yolactpp.model"]  # module level
    assert "yolactpp.zoo" in graph["yolactpp.registry"]  # import_module("...") inside a function
    assert "yolactpp.model" in graph["yolactpp"]  # lazy re-export of the package __init__
    assert "yolactpp.tracking" not in graph["yolactpp.model"]  # under TYPE_CHECKING: never runs


def test_a_new_cycle_is_found(graph_tool: ModuleType, tmp_path: Path) -> None:
    package = tmp_path / "yolactpp"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from yolactpp.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")  # relative, in a function
    (package / "c.py").write_text("import yolactpp.a\n")
    graph = graph_tool.import_graph(tmp_path)
    assert graph_tool.cycles(graph) == [["yolactpp.a", "yolactpp.c", "yolactpp.sub.b"]]
