"""The structure finder (codegen/backends/pytorch/blocks.py) on small hand-made IR graphs:
flat scopes with unhelpful names, where the blocks can only be found from the graph."""

from __future__ import annotations

import ast
import re

import numpy as np
import torch

from codegen.backends.pytorch.blocks import MIN_UNITS, find_blocks
from codegen.backends.pytorch.build import build
from codegen.backends.pytorch.structure import build_tree
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array
from codegen.verify import import_generated

RNG = np.random.default_rng(0)


class Builder:
    """A flat graph of dense layers named like a tracer names them (dense, dense_1, ...)."""

    def __init__(self, ir_dir, width: int) -> None:
        self.ir_dir, self.width = ir_dir, width
        self.nodes: list[Node] = []
        self.weights: dict = {}
        self.values: dict[str, np.ndarray] = {}  # weight name -> array (for the reference)
        self.counts: dict[str, int] = {}

    def name(self, base: str) -> str:
        count = self.counts.get(base, 0)
        self.counts[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def dense(self, ref: str, out: int | None = None, width: int | None = None) -> str:
        name = self.name("dense")
        kernel = RNG.normal(0, 0.5, (width or self.width, out or self.width)).astype(np.float32)
        self.weights[f"{name}/kernel"] = save_array(self.ir_dir, f"{name}/kernel", kernel,
                                                    file_name=f"{name}.kernel.npy")
        self.values[name] = kernel
        self.nodes.append(Node(name, "linear", [ref], [TensorInfo([None, out or self.width])],
                               weights={"kernel": f"{name}/kernel"}, scope=name))
        return f"{name}:0"

    def op(self, op: str, *refs: str) -> str:
        name = self.name(op)
        self.nodes.append(Node(name, op, list(refs), [TensorInfo([None, self.width])], scope=name))
        return f"{name}:0"

    def graph(self, output: str) -> Graph:
        graph = Graph([GraphInput("x", [None, self.width])], [GraphOutput("y", output)],
                      {node.name: node for node in self.nodes}, self.weights, layout="NHWC")
        graph.save(self.ir_dir)
        return graph


def residual_net(ir_dir, blocks: int, width: int = 8):
    """dense -> relu, then `blocks` x (dense, relu, dense, + x, relu), then dense: with numpy
    as the reference."""
    b = Builder(ir_dir, width)
    x = b.op("relu", b.dense("x:0"))
    for _ in range(blocks):
        x = b.op("relu", b.op("add", b.dense(b.op("relu", b.dense(x))), x))
    output = b.dense(x, out=3)

    def reference(value: np.ndarray) -> np.ndarray:
        kernels = iter(b.values.values())
        value = np.maximum(value @ next(kernels), 0)
        for _ in range(blocks):
            inner = np.maximum(value @ next(kernels), 0) @ next(kernels)
            value = np.maximum(inner + value, 0)
        return value @ next(kernels)

    return b.graph(output), reference


def two_input_cells(ir_dir, cells: int, width: int = 8):
    """NASNet-like: each cell reads the two cells before it,
    cell(prev, prev_prev) = relu(dense(prev)) + dense(prev_prev), then relu(dense(that))."""
    b = Builder(ir_dir, width)
    before, previous = "x:0", b.op("relu", b.dense("x:0"))
    for _ in range(cells):
        left = b.op("relu", b.dense(previous))
        right = b.dense(before)
        before, previous = previous, b.op("relu", b.dense(b.op("add", left, right)))
    output = b.dense(previous, out=3)

    def reference(value: np.ndarray) -> np.ndarray:
        kernels = iter(b.values.values())
        before, previous = value, np.maximum(value @ next(kernels), 0)
        for _ in range(cells):
            left = np.maximum(previous @ next(kernels), 0)
            right = before @ next(kernels)
            before, previous = previous, np.maximum((left + right) @ next(kernels), 0)
        return previous @ next(kernels)

    return b.graph(output), reference


def run(tmp_path, reference, width: int = 8):
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    model = import_generated(tmp_path / "model").load_model()
    x = RNG.normal(size=(4, width)).astype(np.float32)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, reference(x), rtol=1e-5, atol=1e-5)
    return (tmp_path / "model" / "model.py").read_text()


def classes_of(text: str) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in ast.parse(text).body if isinstance(node, ast.ClassDef)}


def forward_lengths(text: str) -> list[int]:
    return [node.end_lineno - node.lineno + 1 for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef) and node.name == "forward"]


def test_residual_blocks_in_a_flat_scope_become_one_class_in_a_sequential(tmp_path):
    graph, reference = residual_net(tmp_path / "ir", blocks=12)
    tree = build_tree(graph)
    find_blocks(tree, graph)
    (stage,) = [child for child in tree.root.children if child.found]
    assert len(stage.children) == 12 and all(block.found for block in stage.children)
    text = run(tmp_path, reference)
    blocks = [name for name in classes_of(text) if name not in ("Model", "Dense")]
    assert len(blocks) == 1, list(classes_of(text))
    assert "nn.Sequential" in text and "for _ in range(12)" in text, text
    assert max(forward_lengths(text)) <= 12, text
    assert len(text.splitlines()) < 120


def test_names_come_from_the_structure_without_tracer_suffixes(tmp_path):
    _, reference = residual_net(tmp_path / "ir", blocks=8)
    text = run(tmp_path, reference)
    block = classes_of(text)[next(n for n in classes_of(text) if n not in ("Model", "Dense"))]
    attrs = {target.attr for node in ast.walk(block) if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Attribute)}
    assert attrs == {"dense", "dense_2"}, attrs  # by kind, not dense_13 / dense_14


def test_same_ir_gives_the_same_file(tmp_path):
    residual_net(tmp_path / "ir", blocks=8)
    build(tmp_path / "ir", tmp_path / "a", quiet=True)
    build(tmp_path / "ir", tmp_path / "b", quiet=True)
    assert (tmp_path / "a" / "model.py").read_bytes() == (tmp_path / "b" / "model.py").read_bytes()
    keys = sorted(p.name for p in (tmp_path / "a" / "weights").glob("*.npy"))
    assert keys == sorted(p.name for p in (tmp_path / "b" / "weights").glob("*.npy"))
    assert any(key.startswith("blocks.3.") for key in keys), keys


def test_cells_that_read_the_two_cells_before_them(tmp_path):
    """NASNet-like cells: no point has one live tensor, so the cuts are where two are."""
    graph, reference = two_input_cells(tmp_path / "ir", cells=10)
    tree = build_tree(graph)
    find_blocks(tree, graph)
    assert sum(1 for child in tree.root.children if child.found) >= 8
    text = run(tmp_path, reference)
    # cells 2-9 are one class taking (previous, before); the first and the last differ
    # (the first reads the graph input, the last feeds the classifier)
    calls = re.findall(r"self\.block_\d+ = (\w+)\(\)", text)
    assert max(calls.count(name) for name in set(calls)) >= 8, text
    assert max(forward_lengths(text)) <= 25, text


def test_a_short_scope_is_left_alone(tmp_path):
    graph, _ = residual_net(tmp_path / "ir", blocks=2)
    assert len(graph.nodes) < MIN_UNITS
    tree = build_tree(graph)
    before = [child.name for child in tree.root.children]
    find_blocks(tree, graph)
    assert [child.name for child in tree.root.children] == before
    assert not tree.notes


def test_keras_residual_blocks_with_default_names(tmp_path):
    """Six residual blocks built in a loop with default layer names (conv2d_7,
    batch_normalization_7, add_3): one block class in an nn.Sequential, a short file, and
    the same numbers as TensorFlow."""
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.frontends.tensorflow.to_ir import to_ir

    import_tf()
    import keras

    keras.backend.clear_session()  # default layer names count from 1 whatever ran before
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    for _ in range(6):
        y = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(16, 3, padding="same")(y)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    for layer in model.layers:  # statistics away from 0 / 1, so a misplaced BN shows
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(RNG.uniform(-0.5, 0.5, channels).astype(np.float32))
            layer.moving_variance.assign(RNG.uniform(0.5, 2, channels).astype(np.float32))
    model.export(str(tmp_path / "saved"), verbose=False)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    text = (tmp_path / "model" / "model.py").read_text()

    images = RNG.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    expected = model(images).numpy()
    with torch.no_grad():
        ours = import_generated(tmp_path / "model").load_model()(
            torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(ours - expected).max() <= 1e-4 * np.abs(expected).max()
    names = [name for name in classes_of(text) if name != "FusedIntoConv"]  # (fuse()'s helper)
    assert len(names) == 2, names  # the block and the model
    assert "for _ in range(6)" in text, text
    assert max(forward_lengths(text)) <= 15, text
    assert len(text.splitlines()) <= 150, len(text.splitlines())
    # the source's conv2d_7 ... conv2d_12 are gone (conv2d_2 is the block's second conv)
    assert not re.search(r"\b(conv2d|batch_normalization|add|re_lu)_([3-9]|\d\d+)\b", text), text
