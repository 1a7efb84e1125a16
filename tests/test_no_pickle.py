"""Nothing is unpickled anywhere: every np.load says allow_pickle=False, every torch.load
weights_only=True, and no pickle-based module is imported (the package, its templates and
the generated code of the golden files are scanned)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import codegen

ROOT = Path(codegen.__file__).parent.parent
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}
REQUIRED = {("np", "load"): ("allow_pickle", False), ("numpy", "load"): ("allow_pickle", False),
            ("torch", "load"): ("weights_only", True)}


def python_sources() -> list[Path]:
    return sorted((ROOT / "codegen").rglob("*.py")) + sorted((ROOT / "tests/data/expected").rglob("*.py"))


def unsafe_forms(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLERS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name):
            call = (node.func.value.id, node.func.attr)
            if call in REQUIRED:
                name, value = REQUIRED[call]
                given = {k.arg: k.value for k in node.keywords}
                if not (isinstance(given.get(name), ast.Constant) and given[name].value is value):
                    found.append(f"{'.'.join(call)}(...) without {name}={value} (line {node.lineno})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("eval", "exec"):
            found.append(f"{node.func.id}() (line {node.lineno})")
    return found


def test_sources_never_unpickle():
    sources = python_sources()
    assert len(sources) > 30
    problems = {str(path): unsafe_forms(ast.parse(path.read_text())) for path in sources}
    assert {path: found for path, found in problems.items() if found} == {}


def test_templates_never_unpickle():
    templates = sorted((ROOT / "templates").rglob("*.jinja"))
    loads = 0
    for path in templates:
        text = path.read_text()
        assert not re.search(r"\b(pickle|dill|joblib|marshal)\b", text), path
        for call in re.findall(r"(?:np|numpy|torch)\.load\(.*", text):
            loads += 1
            assert "allow_pickle=False" in call or "weights_only=True" in call, (path, call)
    assert loads >= 1  # model.py.jinja loads its weights


def test_the_scan_finds_unsafe_forms():
    bad = ast.parse("import pickle\nnp.load(p)\nnp.load(p, allow_pickle=True)\n"
                    "torch.load(p)\nnumpy.load(p, allow_pickle=False)\nexec('1')\n")
    assert len(unsafe_forms(bad)) == 5
