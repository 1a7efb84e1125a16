"""Blocks that differ only in constructor arguments (codegen/backends/pytorch/variants.py and
modules.py): another activation, an optional residual, an optional first layer. On small
hand-made IR graphs in one flat scope, named as Keras names the layers of a block
(`block_3_fc1`, `block_3_fc2`): one class with arguments, numbers unchanged."""

from __future__ import annotations

import ast

import numpy as np
from test_blocks import RNG, classes_of, forward_lengths, run

from codegen.backends.pytorch.build import build
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array

NUMPY = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}


class Named:
    """A flat graph of dense layers with the names the test gives them."""

    def __init__(self, ir_dir, width: int) -> None:
        self.ir_dir, self.width = ir_dir, width
        self.nodes: list[Node] = []
        self.weights: dict = {}
        self.kernels: dict[str, np.ndarray] = {}
        self.count = 0

    def dense(self, name: str, ref: str, out: int | None = None) -> str:
        kernel = RNG.normal(0, 0.4, (self.width, out or self.width)).astype(np.float32)
        self.weights[f"{name}/kernel"] = save_array(self.ir_dir, f"{name}/kernel", kernel,
                                                    file_name=f"{name}.kernel.npy")
        self.kernels[name] = kernel
        self.nodes.append(Node(name, "linear", [ref], [TensorInfo([None, out or self.width])],
                               weights={"kernel": f"{name}/kernel"}, scope=name))
        return f"{name}:0"

    def op(self, op: str, *refs: str) -> str:
        self.count += 1
        name = f"{op}_{self.count}"
        self.nodes.append(Node(name, op, list(refs), [TensorInfo([None, self.width])], scope=name))
        return f"{name}:0"

    def graph(self, output: str) -> Graph:
        graph = Graph([GraphInput("x", [None, self.width])], [GraphOutput("y", output)],
                      {node.name: node for node in self.nodes}, self.weights, layout="NHWC")
        graph.save(self.ir_dir)
        return graph


# (activation, residual, first layer) of each block
VARIANTS = [("relu", False, True), ("relu", True, True), ("relu", True, True),
            ("tanh", False, True), ("tanh", True, True), ("tanh", True, True),
            ("relu", True, False), ("relu", True, True), ("sigmoid", True, True),
            ("sigmoid", True, True), ("relu", False, True), ("relu", True, True)]


def varied_blocks(ir_dir, width: int = 6):
    """stem dense, then blocks `block_<i>`: [fc1, act], fc2, act, fc3, [+ x]; then a head."""
    b = Named(ir_dir, width)
    x = b.dense("stem", "x:0")
    for i, (act, residual, first) in enumerate(VARIANTS):
        h = b.op(act, b.dense(f"block_{i}_fc1", x)) if first else x
        h = b.dense(f"block_{i}_fc3", b.op(act, b.dense(f"block_{i}_fc2", h)))
        x = b.op("add", h, x) if residual else h
    output = b.dense("head", x, out=3)

    def reference(value: np.ndarray) -> np.ndarray:
        k = b.kernels
        value = value @ k["stem"]
        for i, (act, residual, first) in enumerate(VARIANTS):
            h = NUMPY[act](value @ k[f"block_{i}_fc1"]) if first else value
            h = NUMPY[act](h @ k[f"block_{i}_fc2"]) @ k[f"block_{i}_fc3"]
            value = h + value if residual else h
        return value @ k["head"]

    return b.graph(output), reference


def test_blocks_that_differ_in_arguments_are_one_class(tmp_path):
    _, reference = varied_blocks(tmp_path / "ir")
    text = run(tmp_path, reference, width=6)
    classes = [name for name in classes_of(text) if name not in ("Model", "FusedIntoConv")]
    assert len(classes) == 1, (classes, text)
    block = classes_of(text)[classes[0]]
    init = next(node for node in block.body if isinstance(node, ast.FunctionDef)
                and node.name == "__init__")
    params = [arg.arg for arg in init.args.args[1:]]
    assert "activation" in params and "use_residual" in params, params
    assert "use_fc1" in params, params  # the optional first layer
    assert "if self.use_residual:" in text and "if self.use_fc1:" in text, text
    model = text.split("class Model")[1]
    for form in ("F.relu", "torch.tanh", "torch.sigmoid"):  # the argument of each block
        assert f"activation={form}" in model, text
    assert "relu" not in text.split("class Model")[0].split(f"class {classes[0]}")[1], text
    assert max(forward_lengths(text)) <= 15, text


def test_variant_classes_are_deterministic_with_stable_keys(tmp_path):
    varied_blocks(tmp_path / "ir")
    build(tmp_path / "ir", tmp_path / "a", quiet=True)
    build(tmp_path / "ir", tmp_path / "b", quiet=True)
    assert (tmp_path / "a" / "model.py").read_bytes() == (tmp_path / "b" / "model.py").read_bytes()
    keys = sorted(p.name for p in (tmp_path / "a" / "weights").glob("*.npy"))
    assert keys == sorted(p.name for p in (tmp_path / "b" / "weights").glob("*.npy"))
    # a block without its optional first layer has no weights for it
    assert not any(key.startswith("blocks.6.fc1.") for key in keys), keys
    assert any(key.startswith("blocks.7.fc1.") for key in keys), keys
