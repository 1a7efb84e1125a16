"""A plain `tf.Module`'s layers are named by its variables (issue 22): `self.conv1`, not
`self.conv`. Its traced function has no name scopes; the variables name their layers, either
by their own names (`tf.Variable(..., name="conv1/kernel")`) or by the attribute path the
SavedModel keeps them under (`self.conv1.kernel`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import codegen, load_generated, read_json, relative_error

from codegen.frontends.tensorflow.saved_variables import _own_name
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.passes.names import scopes_from_variables
from codegen.ir.weights import WeightEntry

SOURCES = {"conv1.weight": "conv1/kernel", "conv1.bias": "conv1/bias",
           "dw.weight": "dw/depthwise_kernel", "conv2.weight": "conv2/kernel",
           "conv2.bias": "conv2/bias", "fc.weight": "fc/kernel", "fc.bias": "fc/bias"}


def module_savedmodel(path, nested: bool):
    """conv1 -> relu -> dw (depthwise) -> relu -> conv2 -> relu -> mean -> fc, as a tf.Module
    saved with tf.saved_model.save: variables named `conv1/kernel`, ... (flat) or unnamed
    in sub-modules `self.conv1.kernel`, ... (nested). Returns (the module, path)."""
    import tensorflow as tf

    rng = np.random.default_rng(7)

    def value(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    shapes = {"conv1/kernel": (3, 3, 3, 8), "conv1/bias": (8,), "dw/depthwise_kernel": (3, 3, 8, 1),
              "conv2/kernel": (1, 1, 8, 16), "conv2/bias": (16,), "fc/kernel": (16, 10),
              "fc/bias": (10,)}

    class Layer(tf.Module):
        def __init__(self, layer):
            super().__init__()
            for name, shape in shapes.items():
                if name.startswith(f"{layer}/"):
                    setattr(self, name.split("/")[1], tf.Variable(value(*shape)))

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            for layer in ("conv1", "dw", "conv2", "fc"):
                if nested:
                    setattr(self, layer, Layer(layer))
                    continue
                for name, shape in shapes.items():
                    if name.startswith(f"{layer}/"):
                        setattr(self, name.replace("/", "_"), tf.Variable(value(*shape), name=name))

        def variable(self, name):
            layer, _, own = name.partition("/")
            return getattr(getattr(self, layer), own) if nested else getattr(self, f"{layer}_{own}")

        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="images")])
        def __call__(self, x):
            v = self.variable
            x = tf.nn.relu(tf.nn.conv2d(x, v("conv1/kernel"), 1, "SAME") + v("conv1/bias"))
            x = tf.nn.relu(tf.nn.depthwise_conv2d(x, v("dw/depthwise_kernel"), [1, 1, 1, 1], "SAME"))
            x = tf.nn.relu(tf.nn.conv2d(x, v("conv2/kernel"), 1, "SAME") + v("conv2/bias"))
            x = tf.reduce_mean(x, axis=[1, 2])
            return {"logits": tf.matmul(x, v("fc/kernel")) + v("fc/bias")}

    module = Net()
    tf.saved_model.save(module, str(path), signatures=module.__call__)
    return module, path


@pytest.mark.parametrize("nested", [False, True], ids=["named_variables", "sub_modules"])
def test_a_tf_module_s_layers_are_named_by_its_variables(tmp_path, nested):
    module, path = module_savedmodel(tmp_path / "net", nested)
    assert codegen("to-ir", path, "-o", tmp_path / "ir").returncode == 0
    result = codegen("build", tmp_path / "ir", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    text = (tmp_path / "out" / "model.py").read_text()
    assert "self.conv1 = nn.Conv2d(" in text
    assert "self.dw = nn.Conv2d(" in text and "groups=8" in text
    assert "self.conv2 = nn.Conv2d(" in text
    assert "self.fc = nn.Linear(" in text
    assert "self.conv = " not in text and "self.conv_2 = " not in text

    index = read_json(tmp_path / "out" / "weights" / "index.json")
    assert {key: entry["source"] for key, entry in index.items()} == SOURCES

    x = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype(np.float32)
    reference = module(x)["logits"].numpy()
    model = load_generated(tmp_path / "out").load_model()
    ours = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    assert relative_error(ours, reference) < 1e-5

    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "again").returncode == 0
    for name in ("model.py", "weights/index.json"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "out" / name).read_bytes()


def _graph(nodes: list[tuple[str, str, str | None]]) -> Graph:
    """A chain of linear nodes: (name, scope, its kernel's source variable or None)."""
    made, weights, source = {}, {}, "x:0"
    for name, scope, variable in nodes:
        node = Node(name, "linear" if variable else "relu", [source], [TensorInfo([None, 4])],
                    scope=scope)
        if variable:
            weights[f"w_{name}"] = WeightEntry(f"weights/w_{name}.npy", [4, 4], "float32", "",
                                               source=variable)
            node.weights = {"kernel": f"w_{name}"}
        made[name] = node
        source = f"{name}:0"
    return Graph([GraphInput("x", [None, 4])], [GraphOutput("y", source)], made, weights,
                 layout="NCHW")


def test_only_unscoped_layers_take_their_variables_layer():
    graph = scopes_from_variables(_graph([
        ("a", "", "conv1/kernel"), ("b", "", "block/proj_kernel"), ("c", "", "fc_weight"),
        ("d", "", "Variable"), ("e", "", "kernel"), ("f", "keras/dense", "dense/kernel"),
        ("g", "", None), ("h", "", "keras/kernel")]))
    assert {name: node.scope for name, node in graph.nodes.items()} == {
        "a": "conv1", "b": "block", "c": "fc", "d": "", "e": "", "f": "keras/dense",
        "g": "", "h": ""}  # `keras` is a scope already: no node joins it from outside


def test_a_variable_is_known_by_its_own_name_else_its_attribute_path():
    assert _own_name("dense/kernel", "layer_with_weights-0/kernel") == "dense/kernel"
    assert _own_name("Variable", "conv1/kernel") == "conv1/kernel"
    assert _own_name("kernel", "conv1/kernel") == "conv1/kernel"
    assert _own_name("Variable_3", "conv1_kernel") == "conv1_kernel"
    assert _own_name("weight", "w") == "weight"
    assert _own_name("", "w") == "w"
