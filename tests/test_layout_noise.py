"""No layout noise in generated code: a chain of permutes is one permute or none
(codegen/ir/passes/tidy.py: compose_transposes), and a reduction reshaped back to its
reduced axes is `keepdim=True` (keepdim_reductions). Small hand-made graphs for the passes,
then a Keras squeeze-excite model end to end, numerically against TensorFlow."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from test_ir_ops import images, run_one_op

from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.passes.tidy import compose_transposes, keepdim_reductions


def _graph(nodes: list[Node], shape=(None, 4, 5, 6), output: str | None = None) -> Graph:
    return Graph([GraphInput("x", list(shape))],
                 [GraphOutput("y", output or f"{nodes[-1].name}:0")],
                 {n.name: n for n in nodes}, {}, layout="NCHW")


def _permute(name: str, source: str, perm: list[int], shape: list) -> Node:
    return Node(name, "transpose", [source], [TensorInfo(shape)], attrs={"perm": perm})


def _chain(perms: list[list[int]]) -> Graph:
    shape = [None, 4, 5, 6]
    nodes, source = [], "x:0"
    for index, perm in enumerate(perms):
        shape = [shape[axis] for axis in perm]
        nodes.append(_permute(f"t{index}", source, perm, shape))
        source = f"t{index}:0"
    nodes.append(Node("relu", "relu", [source], [TensorInfo(shape)]))
    return _graph(nodes)


def test_a_chain_of_permutes_becomes_one():
    perms = [[0, 3, 1, 2], [0, 1, 3, 2], [0, 2, 1, 3]]
    graph = compose_transposes(_chain(perms))
    assert sorted(graph.nodes) == ["relu", "t2"]
    assert graph.nodes["t2"].inputs == ["x:0"] and graph.nodes["relu"].inputs == ["t2:0"]
    x = np.arange(120.0).reshape(1, 4, 5, 6)
    expected = x.transpose(perms[0]).transpose(perms[1]).transpose(perms[2])
    np.testing.assert_array_equal(x.transpose(graph.nodes["t2"].attrs["perm"]), expected)


def test_the_issues_chain_cancels():
    """`.permute(0, 3, 1, 2).permute(0, 1, 3, 2).permute(0, 3, 2, 1)` is no permute at all."""
    graph = compose_transposes(_chain([[0, 3, 1, 2], [0, 1, 3, 2], [0, 3, 2, 1]]))
    assert list(graph.nodes) == ["relu"] and graph.nodes["relu"].inputs == ["x:0"]


def test_permutes_that_cancel_are_dropped_and_a_shared_one_stays():
    a = _permute("a", "x:0", [0, 2, 3, 1], [None, 5, 6, 4])
    b = _permute("b", "a:0", [0, 3, 1, 2], [None, 4, 5, 6])
    relu = Node("relu", "relu", ["b:0"], [TensorInfo([None, 4, 5, 6])])
    other = Node("other", "sigmoid", ["a:0"], [TensorInfo([None, 5, 6, 4])])
    graph = compose_transposes(_graph([a, b, relu, other], output="relu:0"))
    assert sorted(graph.nodes) == ["a", "other", "relu"]  # `a` has another reader
    assert graph.nodes["relu"].inputs == ["x:0"]


def test_an_output_that_is_the_input_unchanged_keeps_its_permute():
    a = _permute("a", "x:0", [0, 2, 1, 3], [None, 5, 4, 6])
    b = _permute("b", "a:0", [0, 2, 1, 3], [None, 4, 5, 6])
    graph = compose_transposes(_graph([a, b]))
    assert list(graph.nodes) == ["b"] and graph.nodes["b"].inputs == ["x:0"]


def _mean_then(reader: Node, keepdims=False, axes=(2, 3)) -> Graph:
    mean = Node("mean", "mean", ["x:0"], [TensorInfo([None, 4])],
                attrs={"axes": list(axes), "keepdims": keepdims})
    conv = Node("sig", "sigmoid", [f"{reader.name}:0"], [TensorInfo(reader.outputs[0].shape)])
    return _graph([mean, reader, conv])


@pytest.mark.parametrize("reader", [
    Node("r", "reshape", ["mean:0"], [TensorInfo([None, 4, 1, 1])], attrs={"shape": [-1, 4, 1, 1]}),
    Node("r", "unsqueeze", ["mean:0"], [TensorInfo([None, 4, 1, 1])], attrs={"axes": [2, 3]}),
])
def test_a_reduction_reshaped_back_keeps_its_axes(reader):
    graph = keepdim_reductions(_mean_then(reader))
    assert sorted(graph.nodes) == ["mean", "sig"]
    assert graph.nodes["mean"].attrs["keepdims"] is True
    assert graph.nodes["mean"].outputs[0].shape == [None, 4, 1, 1]
    assert graph.nodes["sig"].inputs == ["mean:0"]


@pytest.mark.parametrize("reader", [
    # another arrangement of the same elements' axes: not the reduced ones put back
    Node("r", "reshape", ["mean:0"], [TensorInfo([None, 1, 4, 1])], attrs={"shape": [-1, 1, 4, 1]}),
    Node("r", "reshape", ["mean:0"], [TensorInfo([None, 2, 2])], attrs={"shape": [-1, 2, 2]}),
    Node("r", "unsqueeze", ["mean:0"], [TensorInfo([None, 1, 4])], attrs={"axes": [1]}),
])
def test_other_reshapes_after_a_reduction_stay(reader):
    graph = keepdim_reductions(_mean_then(reader))
    assert sorted(graph.nodes) == ["mean", "r", "sig"]
    assert graph.nodes["mean"].attrs["keepdims"] is False


def test_composed_permute_runs_like_the_chain(tmp_path):
    """Through `build`: NHWC input, three Keras-style permutes of a rank-4 tensor."""
    x = images(2, 3, 4, 5)
    first = Node("p0", "transpose", ["x:0"], [TensorInfo([None, 4, 3, 5])],
                 attrs={"perm": [0, 2, 1, 3]})
    second = Node("p1", "transpose", ["p0:0"], [TensorInfo([None, 5, 3, 4])],
                  attrs={"perm": [0, 3, 2, 1]})
    ours = run_one_op(tmp_path, "transpose", x, [None, 3, 5, 4], attrs={"perm": [0, 2, 1, 3]},
                      extra=[first, second], inputs=["p1:0"])
    expected = x.transpose(0, 2, 1, 3).transpose(0, 3, 2, 1).transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(ours, expected)
    source = (tmp_path / "model" / "model.py").read_text()
    assert not re.search(r"\.permute\([^)]*\)\s*\.permute\(", source), source
    assert source.count(".permute(") <= 1, source


def squeeze_excite_model():
    """EfficientNet's squeeze-excite (pooling, Reshape, two 1x1 convs) and three Permutes."""
    from codegen.frontends.tensorflow.compat import import_tf

    import_tf()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 6, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    se = keras.layers.GlobalAveragePooling2D()(x)
    se = keras.layers.Reshape((1, 1, 16))(se)
    se = keras.layers.Conv2D(4, 1, activation="relu")(se)
    x = keras.layers.Multiply()([x, keras.layers.Conv2D(16, 1, activation="sigmoid")(se)])
    p = keras.layers.Permute((2, 1, 3))(x)
    p = keras.layers.Permute((3, 2, 1))(p)
    p = keras.layers.Permute((1, 3, 2))(p)  # (C, W, H) of (H, W, C): one permute
    return keras.Model(inputs, [x, p])


def test_keras_squeeze_excite_reads_without_layout_noise(tmp_path):
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    model = squeeze_excite_model()
    model.export(str(tmp_path / "saved"), verbose=False)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    text = (tmp_path / "model" / "model.py").read_text()
    assert "keepdim=True" in text, text
    assert not re.search(r"\.mean\([^)]*\)\s*\.(reshape|unflatten|view)\(", text), text
    assert not re.search(r"\.permute\([^)]*\)\s*\.permute\(", text), text

    images_ = np.random.default_rng(0).uniform(-1, 1, (2, 8, 6, 3)).astype(np.float32)
    expected = [y.numpy() for y in model(images_)]
    with torch.no_grad():
        ours = import_generated(tmp_path / "model").load_model()(
            torch.from_numpy(images_.transpose(0, 3, 1, 2).copy()))
    io = json.loads((tmp_path / "model" / ".codegen" / "io.json").read_text())
    for y, want, spec in zip(ours, expected, io["outputs"]):
        y = y.numpy().transpose(0, 2, 3, 1) if spec["nchw"] else y.numpy()
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
