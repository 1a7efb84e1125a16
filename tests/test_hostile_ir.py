"""A hostile graph.json cannot inject code into model.py.

The tiny ResNet V2's IR with every name, scope, TF name and source string replaced by
quotes, backslashes, newlines, NUL, `__import__('os').system(...)`, Unicode look-alikes,
Python keywords and dunder names. The build must succeed, the generated file must be
black- and pyflakes-clean, use only safe identifiers, carry the hostile text only inside
string literals, compute exactly what the original model computes, and run nothing.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

from conftest import codegen

PAYLOAD = "__import__('os').system('touch PWNED')"
HOSTILE = [  # no newline: these also become node names, which refs must be able to name
    f'"""; {PAYLOAD}; """',
    f"'''; {PAYLOAD}; '''",
    f'x"); {PAYLOAD} #',
    "class", "def", "None", "lambda", "self", "forward", "__init__", "__class__", "__import__",
    "ѕеlf",  # Cyrillic look-alikes of 'self'
    "ｅｖａｌ",  # full-width 'eval'
    "𝐞𝐱𝐞𝐜",  # mathematical bold 'exec'
    "trailing backslash\\",
    "{{ jinja }}{% raw %}",
]
MULTILINE = [  # scopes, TF names and the source may hold anything
    f'"""\n{PAYLOAD}\n"""',
    f"\\\n{PAYLOAD}  # \\",
    f"nul\x00{PAYLOAD}\r\x0c\u2028",
]


def hostile(index: int, pool=HOSTILE + MULTILINE) -> str:
    return f"{pool[index % len(pool)]}{index}"


def hostile_ir(source: Path, target: Path) -> dict:
    shutil.copytree(source, target)
    data = json.loads((target / "graph.json").read_text())
    names = {i["name"]: f"{HOSTILE[n % len(HOSTILE)]}_in{n}" for n, i in enumerate(data["inputs"])}
    names.update({node["name"]: f"{HOSTILE[n % len(HOSTILE)]}_{n}"
                  for n, node in enumerate(data["nodes"])})
    parts: dict[str, str] = {}

    def scope(path: str) -> str:
        return "/".join(parts.setdefault(p, hostile(len(parts))) for p in path.split("/") if p)

    def ref(text: str) -> str:
        name, _, index = text.rpartition(":")
        return f"{names[name]}:{index}"

    weights = {name: f"{HOSTILE[n % len(HOSTILE)]}/w{n}" for n, name in enumerate(data["weights"])}
    for n, graph_input in enumerate(data["inputs"]):
        graph_input.update(name=names[graph_input["name"]], tf_name=hostile(n))
    for n, output in enumerate(data["outputs"]):
        output.update(name=hostile(n + 3), source=ref(output["source"]), tf_name=hostile(n + 7))
    for n, node in enumerate(data["nodes"]):
        node.update(name=names[node["name"]], inputs=[ref(r) for r in node["inputs"]],
                    scope=scope(node["scope"]), tf_name=hostile(n))
        node["weights"] = {role: weights[w] for role, w in node.get("weights", {}).items()}
    data["weights"] = {weights[name]: {**entry, "tf_name": hostile(n)}
                       for n, (name, entry) in enumerate(data["weights"].items())}
    data["source"] = {"framework": MULTILINE[0], "model": MULTILINE[1], "weights": MULTILINE[2]}
    (target / "graph.json").write_text(json.dumps(data, indent=1))
    return data


SAFE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALLOWED_DUNDERS = {"__init__", "__file__", "__future__", "annotations"}


def identifiers(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return found


def test_hostile_names_cannot_inject_code(tiny_build, tmp_path):
    hostile_ir(tiny_build / "ir", tmp_path / "ir")
    result = codegen("build", tmp_path / "ir", "-o", tmp_path / "model")
    assert result.returncode == 0, result.stderr
    model = tmp_path / "model" / "model.py"
    source = model.read_text()

    import black

    assert black.format_str(source, mode=black.Mode()) == source
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F,E9",
                           str(model)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout

    tree = ast.parse(source)
    for name in identifiers(tree):
        assert SAFE_IDENTIFIER.match(name) and not keyword.iskeyword(name), name
        assert not (name.startswith("__") and name not in ALLOWED_DUNDERS), name
    assert source.isascii()  # look-alikes are spelled out as escapes, never hidden
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:  # names from the model never reach comments
            assert "PWNED" not in token.string, token
        elif token.type != tokenize.STRING:  # the payload is a string or a plain identifier
            assert "__import__" not in token.string and "'" not in token.string, token
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {func.id for func in calls if isinstance(func, ast.Name)}
    assert not names & {"__import__", "eval", "exec", "open", "compile", "getattr"}, names
    assert "system" not in {func.attr for func in calls if isinstance(func, ast.Attribute)}

    index = json.loads((model.parent / "weights" / "index.json").read_text())
    assert all(re.match(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", key) for key in index)  # safe file names

    # import it and run it where the payload would leave its mark
    check = (
        "import sys, numpy as np, torch\n"
        f"sys.path.insert(0, {str(model.parent)!r})\n"
        "import model\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(2, 3, 33, 33)\n"
        "ours = model.load_model()(x).detach().numpy()\n"
        f"sys.path.insert(0, {str(tiny_build / 'model')!r}); del sys.modules['model']\n"
        "import model as original\n"
        "print(float(np.abs(ours - original.load_model()(x).detach().numpy()).max()))\n"
    )
    run = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) == 0.0  # the same network, bit for bit
    assert list(tmp_path.rglob("PWNED")) == [] and not Path("PWNED").exists()


def test_hostile_string_attribute_is_rejected(tiny_build, tmp_path):
    data = hostile_ir(tiny_build / "ir", tmp_path / "ir")
    pad = next(node for node in data["nodes"] if node["op"] == "pad")
    pad["attrs"]["mode"] = f'constant"); {PAYLOAD} #'
    (tmp_path / "ir" / "graph.json").write_text(json.dumps(data))
    result = codegen("build", tmp_path / "ir", "-o", tmp_path / "model")
    assert result.returncode == 5, result.stderr
    assert "attrs:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "model").exists()
