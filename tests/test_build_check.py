"""`codegen build` never writes code that cannot run: it imports the staged model.py, loads
the staged weights and runs the model on sample inputs of the IR's input spec before the output
is swapped in. Code that fails is exit 10 with one line naming the IR node whose code failed,
and the output folder is as it was (or not there). IR graphs written by the tests themselves,
in the style of tests/test_ir_ops.py: a matmul of mismatched sizes, an add that cannot
broadcast. No TensorFlow needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from golden import check_snapshot

from codegen.backends.pytorch.build import build
from codegen.errors import Exit, GeneratedCodeError
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array

RNG = np.random.default_rng(0)


def write_ir(ir_dir: Path, *, in_features: int = 6, shift: int = 3) -> Path:
    """x [N, 6] -> relu -> head/fc (kernel [in_features, 3]) -> + shift/value [shift] -> y.
    With in_features=6 and shift=3 it runs; other values make code that cannot run."""
    ir_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"head/fc/kernel": RNG.uniform(-1, 1, (in_features, 3)).astype(np.float32),
              "shift/value": RNG.uniform(-1, 1, (shift,)).astype(np.float32)}
    weights = {name: save_array(ir_dir, name, value, file_name=name.replace("/", "_") + ".npy",
                                tf_name=name) for name, value in arrays.items()}
    nodes = [
        Node("relu", "relu", ["x:0"], [TensorInfo([None, 6])], tf_name="relu"),
        Node("head/fc", "linear", ["relu:0"], [TensorInfo([None, 3])],
             weights={"kernel": "head/fc/kernel"}, tf_name="head/fc/MatMul", scope="head"),
        Node("shift", "constant", [], [TensorInfo([shift])], weights={"value": "shift/value"},
             tf_name="shift"),
        Node("head/add", "add", ["head/fc:0", "shift:0"], [TensorInfo([None, 3])],
             tf_name="head/add", scope="head"),
    ]
    graph = Graph([GraphInput("x", [None, 6], "float32")], [GraphOutput("y", "head/add:0")],
                  {node.name: node for node in nodes}, weights, layout="NHWC")
    graph.save(ir_dir)
    return ir_dir


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bad, node, needle", [
    ({"in_features": 4}, "head/fc", "mat1 and mat2 shapes cannot be multiplied"),
    ({"shift": 5}, "head/add", "must match the size of tensor b"),
])
def test_code_that_cannot_run_is_never_written(tmp_path, bad, node, needle):
    out = tmp_path / "out"
    build(write_ir(tmp_path / "good"), out, quiet=True)  # a previous, good output
    before = files(out)
    with pytest.raises(GeneratedCodeError) as error:
        build(write_ir(tmp_path / "bad", **bad), out, quiet=True)
    message = error.value.message
    assert f"node {node!r}" in message and needle in message, message
    assert "nothing was written" in message and "\n" not in message
    assert files(out) == before  # the previous output, byte for byte
    assert [p.name for p in tmp_path.iterdir() if ".codegen-" in p.name] == []
    with pytest.raises(GeneratedCodeError):
        build(tmp_path / "bad", tmp_path / "new", quiet=True)
    assert not (tmp_path / "new").exists()


def test_cli_error_line(tmp_path):
    """The command line: exit 10, one line naming the node, no traceback (snapshot)."""
    ir_dir = write_ir(tmp_path / "ir", in_features=4)
    result = subprocess.run([sys.executable, "-m", "codegen.cli", "build", ir_dir, "-o",
                             tmp_path / "out"], capture_output=True, text=True, check=False)
    tmp = str(tmp_path)
    text = (f"$ codegen build <tmp>/ir -o <tmp>/out\nexit code: {result.returncode}\n--- stdout\n"
            f"{result.stdout}--- stderr\n{result.stderr}").replace(tmp, "<tmp>")
    check_snapshot("build_code_fails_when_run", text)
    assert result.returncode == Exit.GENERATED_CODE == 10
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("codegen: error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_good_code_runs_at_every_draw(tmp_path):
    """A model that runs is written; the check ran it (batch 2 and 1: the batch is unknown)."""
    from codegen.backends.pytorch import check

    calls = []
    original = check.torch_inputs

    def spy(io, feeds):
        calls.append([array.shape for array in feeds.values()])
        return original(io, feeds)

    check.torch_inputs = spy
    try:
        build(write_ir(tmp_path / "ir"), tmp_path / "out", quiet=True)
    finally:
        check.torch_inputs = original
    assert calls == [[(2, 6)], [(1, 6)]]
    assert (tmp_path / "out" / "model.py").is_file()


@pytest.mark.parametrize("layers", [1, 2])
def test_the_failing_call_and_instance_are_named(tmp_path, layers):
    """Scopes `a` and `b`, each `layers` linears then a relu; only b's last kernel does not fit
    its input. With one linear a scope is a layer and both calls are on one line,
    `F.relu(self.b(F.relu(self.a(x))))`: the failing call's column says which. With two,
    a and b are two instances of one class: the failing frame's module instance says which."""
    ir_dir = tmp_path / "ir"
    ir_dir.mkdir()
    kernels = {"a": [(6, 4)] + [(4, 4)] * (layers - 1), "b": [(4, 4)] * (layers - 1) + [(5, 3)]}
    nodes, weights, previous = [], {}, "x:0"
    for scope, shapes in kernels.items():
        for index, shape in enumerate(shapes):
            name = f"{scope}/fc{index}"
            weights[f"{name}/kernel"] = save_array(
                ir_dir, f"{name}/kernel", RNG.uniform(-1, 1, shape).astype(np.float32),
                file_name=f"{scope}_fc{index}.npy", tf_name=f"{name}/kernel")
            nodes.append(Node(name, "linear", [previous], [TensorInfo([None, shape[1]])],
                              weights={"kernel": f"{name}/kernel"}, scope=scope,
                              tf_name=f"{name}/MatMul"))
            previous = f"{name}:0"
        nodes.append(Node(f"{scope}/relu", "relu", [previous], [TensorInfo([None, shape[1]])],
                          scope=scope, tf_name=f"{scope}/relu"))
        previous = f"{scope}/relu:0"
    Graph([GraphInput("x", [None, 6], "float32")], [GraphOutput("y", previous)],
          {node.name: node for node in nodes}, weights, layout="NHWC").save(ir_dir)
    bad = f"b/fc{layers - 1}"
    with pytest.raises(GeneratedCodeError, match=rf"node '{bad}' \(linear, TF '{bad}/MatMul'\)"):
        build(ir_dir, tmp_path / "out", quiet=True)
    build(ir_dir, tmp_path / "unchecked", quiet=True, check=False)  # what it would have written
    source = (tmp_path / "unchecked" / "model.py").read_text()
    if layers == 1:
        assert "F.relu(self.b(F.relu(self.a(x)" in source, source
    else:
        assert "self.a = " in source and "self.b = " in source and source.count("class ") == 2


def test_a_template_that_writes_code_that_cannot_run(tmp_path):
    """A user's template (--templates) whose code fails: the error names the node and says to
    check the templates, not to report a bug of codegen."""
    templates = tmp_path / "templates" / "ops"
    templates.mkdir(parents=True)
    (templates / "activation.py.jinja").write_text(
        "{% macro forward(x, a) -%}\ntorch.relu({{ x[0] }}, inplace=True)\n{%- endmacro %}\n")
    with pytest.raises(GeneratedCodeError, match=r"node 'relu' \(relu\).*check your templates"):
        build(write_ir(tmp_path / "ir"), tmp_path / "out", quiet=True,
              templates=tmp_path / "templates")
    assert not (tmp_path / "out").exists()


def test_merged_edits_that_cannot_run(tmp_path):
    """A rebuild merges your edits of model.py; if the merged file cannot run, nothing is
    written and the error says to fix the edits (or --force), not to report a bug."""
    ir_dir, out = write_ir(tmp_path / "ir"), tmp_path / "out"
    build(ir_dir, out, quiet=True)
    model = out / "model.py"
    edited = model.read_text().replace("F.relu(", "F.relu_oops(")
    assert edited != model.read_text()
    model.write_text(edited)
    before = files(out)
    with pytest.raises(GeneratedCodeError, match="your edits of model.py were merged"):
        build(ir_dir, out, quiet=True)
    assert files(out) == before
    build(ir_dir, out, quiet=True, force=True)  # --force: the generated text, which runs
    assert "F.relu(" in model.read_text() and (out / "model.py.bak").read_text() == edited


@pytest.mark.parametrize("bad, node, needle", [
    ({"in_features": 4}, "head/fc", "[2, 6] X [4, 3]"),  # (the meta kernels' own words)
    ({"shift": 5}, "head/add", "broadcastable"),
])
def test_large_models_are_checked_on_the_meta_device(tmp_path, monkeypatch, bad, node, needle):
    """Above IN_MEMORY_BYTES of weights no weight is loaded: the model runs on the meta
    device, which still finds every shape error and names its node; a good model builds."""
    from codegen.backends.pytorch import check

    monkeypatch.setattr(check, "IN_MEMORY_BYTES", 0)
    loaded = []
    monkeypatch.setattr(check, "_quick_model", lambda *args: loaded.append(args))
    build(write_ir(tmp_path / "good"), tmp_path / "out", quiet=True)
    with pytest.raises(GeneratedCodeError) as error:
        build(write_ir(tmp_path / "bad", **bad), tmp_path / "new", quiet=True)
    assert f"node {node!r}" in error.value.message and needle in error.value.message
    assert loaded == [] and not (tmp_path / "new").exists()
