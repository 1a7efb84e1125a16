"""The frontend's boundaries hold: handlers and rewrites talk only to their Context, and
the context does not import the converter (data flows converter -> context -> handler)."""

from __future__ import annotations

import re
from pathlib import Path

FRONTEND = Path(__file__).resolve().parent.parent / "codegen" / "frontends" / "tensorflow"


def test_handlers_and_rewrites_use_only_the_context():
    for folder in ("handlers", "rewrites"):
        for path in sorted((FRONTEND / folder).glob("*.py")):
            text = path.read_text()
            assert ".converter" not in text, f"{path.name}: use the Context's methods"
            assert "import converter" not in text and "converter import" not in text, path.name


def test_context_does_not_import_the_converter():
    text = (FRONTEND / "context.py").read_text()
    assert not re.search(r"^\s*from codegen\.frontends\.tensorflow\.converter import", text, re.MULTILINE)


def _imports(path: Path, package: Path) -> set[str]:
    """The codegen modules a file imports (at the top or inside a function), dotted."""
    import ast

    module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = module.split(".")[: -node.level + (path.name == "__init__.py")]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import mod`
    return {name for name in found if name.split(".")[0] == "codegen"}


def import_graph(package: Path = FRONTEND.parent.parent):
    import networkx as nx

    modules = {}
    for path in sorted(package.rglob("*.py")):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in _imports(path, package):
            if target in modules and target != name and not name.startswith(target + "."):
                graph.add_edge(name, target)  # (a package's __init__ is not a cycle partner)
    return graph


def test_no_import_cycles():
    """No module of codegen imports one that imports it back, directly or through others,
    even inside a function: op family modules take `Layer`, `Expr` and `renderer` from
    codegen.backends.pytorch.registry, not from ops.py (which imports them all)."""

    assert not _cycles(import_graph()), "import cycles: " + "; ".join(
        " <-> ".join(cycle) for cycle in _cycles(import_graph()))


def _cycles(graph) -> list[list[str]]:
    import networkx as nx

    return sorted(sorted(cycle) for cycle in nx.simple_cycles(graph))


def test_import_cycle_check_sees_a_cycle(tmp_path):
    package = tmp_path / "codegen"
    package.mkdir()
    (package / "a.py").write_text("from codegen.b import x\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text("import codegen.a\n")
    (package / "d.py").write_text("from codegen import b\n")
    assert _cycles(import_graph(package)) == [["codegen.a", "codegen.b", "codegen.c"]]
