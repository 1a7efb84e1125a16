"""Names without the tracer's numbers (codegen/ir/passes/names.py) and block forward
parameters named by role (naming.role_names). Hand-made graphs first (no TensorFlow), then
a retraced Keras model end to end."""

from __future__ import annotations

import numpy as np
import torch

from codegen.backends.pytorch.naming import role_names
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.passes.names import drop_tracer_suffixes
from codegen.ir.weights import WeightEntry


def _graph(layers: list[tuple[str, str | None]], extra_scopes=()) -> Graph:
    """A chain of nodes, one per (scope, layer its variable names or None)."""
    nodes, weights, source = [], {}, "x:0"
    for index, (scope, layer) in enumerate([*layers, *((s, None) for s in extra_scopes)]):
        name = f"n{index}"
        node = Node(name, "relu", [source], [TensorInfo([None, 4])], scope=scope)
        if layer is not None:
            node.op = "linear"
            weights[f"w{index}"] = WeightEntry(f"weights/w{index}.npy", [4, 4], "float32", "",
                                               source=f"{layer}/kernel")
            node.weights = {"weight": f"w{index}"}
        nodes.append(node)
        source = f"{name}:0"
    return Graph([GraphInput("x", [None, 4])], [GraphOutput("y", source)],
                 {n.name: n for n in nodes}, weights, layout="NCHW")


def _scopes(graph: Graph) -> list[str]:
    return [node.scope for node in graph.nodes.values()]


def test_a_retraced_model_gets_its_layers_names_back():
    """`model.export` traces again: every layer scope carries `_1` (or `_2` where `_1` was
    taken); the variables name the layers; the layers without variables follow."""
    graph = drop_tracer_suffixes(_graph([
        ("functional_1/dense_1", "dense"), ("functional_1/dense_1_2", "dense_1"),
        ("functional_1/dense_2_1", "dense_2"), ("functional_1/multiply_1", None),
        ("functional_1/multiply_1_2", None), ("functional_1/re_lu_1", None)]))
    assert _scopes(graph) == ["functional_1/dense", "functional_1/dense_1", "functional_1/dense_2",
                              "functional_1/multiply", "functional_1/multiply_1",
                              "functional_1/re_lu"]


def test_a_lone_layer_loses_the_keras_instance_number_too():
    """`dense_1_2` (the layer `dense_1`, the only dense there) -> `dense`."""
    graph = drop_tracer_suffixes(_graph([
        ("model/conv2d_1", "conv2d"), ("model/dense_1_2", "dense_1"),
        ("model/layer_normalization_2_1", "layer_normalization_2")]))
    assert _scopes(graph) == ["model/conv2d", "model/dense", "model/layer_normalization"]


def test_partly_stripped_scopes_lose_the_collision_number():
    """The frontend already dropped most `_1`s (saved.py): what is left is `_2` where the
    layer's own name ended in `_1` (`squeeze_excite_conv_1_2`, `activation_1_2`)."""
    graph = drop_tracer_suffixes(_graph([
        ("m/se_conv", "se_conv"), ("m/se_conv_1_2", "se_conv_1"), ("m/activation", None),
        ("m/activation_1_2", None), ("m/activation_2", None)]))
    assert _scopes(graph) == ["m/se_conv", "m/se_conv_1", "m/activation", "m/activation_1",
                              "m/activation_2"]


def test_names_the_source_gave_stay():
    """No variable shows a tracer: TF-slim's `unit_1`, `conv2_1` and an `add_1` stay."""
    scopes = ["net/block1/unit_1/conv1", "net/block1/unit_2/conv1", "net/conv2_1", "net/add_1"]
    graph = drop_tracer_suffixes(_graph([(scopes[0], "conv1"), (scopes[1], "conv1"),
                                         (scopes[2], "conv2_1"), (scopes[3], None)]))
    assert _scopes(graph) == scopes


def test_a_rename_onto_a_taken_name_is_not_made():
    """`dense_1` keeps its name when the scope `dense` stays another layer's."""
    graph = drop_tracer_suffixes(_graph([("m/dense", "other"), ("m/dense_1", "dense")]))
    assert _scopes(graph) == ["m/dense", "m/dense_1"]


def test_the_same_ir_gives_the_same_names():
    layers = [("f/dense_1", "dense"), ("f/dense_1_2", "dense_1"), ("f/add_1", None)]
    assert _scopes(drop_tracer_suffixes(_graph(layers))) == _scopes(drop_tracer_suffixes(_graph(layers)))


def test_role_names():
    ids = GraphInput("token_ids", [None, None], "int32")
    mask = GraphInput("padding_mask", [None, None], "int32")
    hidden = Node("h", "add", ["a:0", "b:0"], [TensorInfo([None, None, 8])])
    expanded = Node("m", "unsqueeze", ["padding_mask:0"], [TensorInfo([None, 1, None], "int32")])
    image = Node("c", "relu", ["h:0"], [TensorInfo([None, 8, 4, 4])])
    graph = Graph([ids, mask], [], {n.name: n for n in (hidden, expanded, image)}, {})
    assert role_names(graph, ["m:0", "h:0"]) == ["attention_mask", "hidden_states"]
    assert role_names(graph, ["padding_mask:0", "h:0", "h:0"]) == [
        "padding_mask", "hidden_states", "hidden_states_2"]
    assert role_names(graph, ["c:0"]) == ["x"]


def retraced_model():
    """Dense, LayerNormalization, Dense, Dense, Add, Multiply: saved as a SavedModel, every
    layer scope of the second trace carries `_1` or `_2`."""
    from codegen.frontends.tensorflow.compat import import_tf

    import_tf()
    import keras

    keras.backend.clear_session()  # layer names from 'dense', whatever ran before
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 5))
    x = keras.layers.Dense(8)(inputs)
    x = keras.layers.LayerNormalization()(x)
    h = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.Add()([x, keras.layers.Dense(8)(h)])
    return keras.Model(inputs, keras.layers.Multiply()([x, x]))


def test_retraced_keras_model_end_to_end(tmp_path):
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    model = retraced_model()
    model.export(str(tmp_path / "saved"), verbose=False)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    text = (tmp_path / "model" / "model.py").read_text()
    layers = [layer.name for layer in model.layers if layer.weights]
    for name in layers:  # named as Keras named them, or without the number where lone
        assert f"self.{name} = " in text or f"self.{name.rpartition('_')[0]} = " in text, text
    assert "_1_" not in text and "_2_1" not in text and "x_ " not in text, text
    build(tmp_path / "ir", tmp_path / "again", quiet=True)  # same IR, byte-identical files
    assert (tmp_path / "again" / "model.py").read_text() == text
    x = np.random.default_rng(0).normal(0, 1, (2, 6, 5)).astype(np.float32)
    with torch.no_grad():
        ours = import_generated(tmp_path / "model").load_model()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, model(x).numpy(), rtol=1e-5, atol=1e-5)
