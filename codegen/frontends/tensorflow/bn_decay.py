"""Each BatchNorm's moving-average decay (Keras `momentum`), from wherever the source keeps it.

The decay is not part of the inference function: a model records it, if at all, beside it.
Each reader returns {layer path: decay}, the layer path being the variable path of the
layer's `moving_mean` without its last part (`bn1`, `block1/unit_1/bottleneck_v2/preact`),
which is how the converter finds the layer of a batch_norm node from its weights.
- a Keras file: each BatchNormalization layer of the loaded model (`from_keras_layers`),
  sublayers of nested models and of custom layers too;
- a tf_keras SavedModel (`model.save(..., save_format='tf')`): `keras_metadata.pb` holds
  each tracked layer's config, and the saved object graph says which variables are its
  `moving_mean` (`from_keras_metadata`). A Keras 3 `model.export()` holds no layer configs
  and no training function: nothing to read;
- a TF1 graph exported for training (`.meta`, or a `.pb`): the update of each moving
  statistic, `moving_mean -= (moving_mean - batch_mean) * (1 - decay)`, holds the decay as
  a constant (`from_graph`). A graph exported with is_training=False has no update.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# TF-slim's ResNet arg scope uses decay 0.997; the default where the source does not say.
DEFAULT_BN_DECAY = 0.997
STATISTICS = ("moving_mean", "moving_variance")


def layer_of(variable: str) -> str:
    """The layer path of a variable path (`bn1/moving_mean` -> `bn1`)."""
    return variable.rpartition("/")[0]


def variable_name(variable) -> str:
    """A variable's own name: Keras 3's `variable.path`, else its TF name without ':0'."""
    return (getattr(variable, "path", None) or variable.name).removesuffix(":0")


def from_keras_layers(model) -> dict[str, float]:
    """The momentum of each layer of a loaded Keras model (Keras 3 or tf_keras) that keeps
    moving statistics (BatchNormalization and its subclasses)."""
    decays = {}
    for layer in model._flatten_layers():  # every layer, nested ones too
        mean, momentum = getattr(layer, "moving_mean", None), getattr(layer, "momentum", None)
        if mean is not None and isinstance(momentum, (int, float)):
            decays[layer_of(variable_name(mean))] = float(momentum)
    return decays


def from_keras_metadata(path: Path) -> dict[str, float] | None:
    """The momentum of each layer in a tf_keras SavedModel's `keras_metadata.pb`; None
    when the SavedModel has no such file (Keras 3's export, tf.saved_model.save)."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf.saved_model_pb2 import SavedModel

    metadata = Path(path) / "keras_metadata.pb"
    if not metadata.is_file():
        return None
    saved_model = SavedModel()
    try:
        saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
        configs = list(_layer_configs(metadata.read_bytes()))
    except DecodeError:  # a damaged file records nothing we can use
        return None
    if len(saved_model.meta_graphs) != 1:
        return None
    object_graph = saved_model.meta_graphs[0].object_graph_def
    decays = {}
    for node_id, config in configs:
        momentum = config.get("momentum")
        if node_id >= len(object_graph.nodes) or not isinstance(momentum, (int, float)):
            continue
        children = {child.local_name: child.node_id
                    for child in object_graph.nodes[node_id].children}
        if "moving_mean" not in children:
            continue
        variable = object_graph.nodes[children["moving_mean"]]
        if variable.WhichOneof("kind") == "variable" and variable.variable.name:
            decays[layer_of(variable.variable.name.removesuffix(":0"))] = float(momentum)
    return decays


def _layer_configs(data: bytes):
    """(object graph node id, the layer's config) of each entry of a keras_metadata.pb.

    The file is a `SavedMetadata` message of tf_keras (repeated `SavedObject nodes = 1`;
    a SavedObject has `int32 node_id = 2` and the JSON `string metadata = 5`), read here
    field by field, without importing Keras."""
    for number, node in _fields(data):
        if number != 1:
            continue
        fields = dict(_fields(node))
        try:
            metadata = json.loads(fields.get(5, b"{}"))
        except ValueError:
            continue
        config = metadata.get("config") if isinstance(metadata, dict) else None
        if isinstance(config, dict):
            yield fields.get(2, 0), config


def _fields(data: bytes) -> list[tuple[int, object]]:
    """The (field number, value) pairs of a protobuf message of an unknown type."""
    from google.protobuf import empty_pb2, unknown_fields

    message = empty_pb2.Empty()
    message.ParseFromString(data)
    return [(field.field_number, field.data) for field in unknown_fields.UnknownFieldSet(message)]


# -- a TF1 graph built for training --------------------------------------------------------
UPDATES = ("AssignSub", "AssignSubVariableOp")


def from_graph(graph_def) -> dict[str, float]:
    """The decay of each moving statistic's update in `graph_def`: AssignSub(moving_mean,
    (moving_mean - batch_mean) * factor), factor = 1 - decay (tf.compat.v1 Keras layers,
    TF-slim unfused) or `1 - decay` computed in the graph (TF-slim fused). Where the factor
    is not a constant (is_training a tensor: an `If` picks it), the layer is left out (such
    a graph's batch norm is an `If` too, which the converter refuses)."""
    nodes = {node.name: node for node in graph_def.node}
    decays = {}
    for node in graph_def.node:
        if node.op not in UPDATES or len(node.input) < 2:
            continue
        key = _op(node.input[0])
        variable = nodes.get(key)
        if variable is not None and variable.op == "VarHandleOp":
            key = variable.attr["shared_name"].s.decode() or key
        delta = nodes.get(_op(node.input[1]))
        if key.rpartition("/")[2] not in STATISTICS or delta is None or delta.op != "Mul":
            continue
        factors = [_scalar(nodes, ref) for ref in delta.input]
        factor = next((value for value in factors if value is not None), None)
        if factor is not None and 0.0 <= factor <= 1.0:
            decays.setdefault(layer_of(key), round(1.0 - factor, 10))
    return decays


def _op(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _scalar(nodes, ref: str, depth: int = 6) -> float | None:
    """The value of a scalar made of constants (Const, Identity, Cast, Sub), else None.
    A float32 constant is read as the shortest decimal that gives it (0.997, not
    0.99699997), as the decay was written."""
    from tensorflow.python.framework.tensor_util import MakeNdarray

    node = nodes.get(_op(ref))
    if node is None or depth == 0:
        return None
    if node.op == "Const":
        value = MakeNdarray(node.attr["value"].tensor)
        if value.size != 1 or value.dtype.kind != "f":
            return None
        value = value.reshape(())
        return float(str(value.item() if value.dtype == np.float64 else np.float32(value)))
    if node.op in ("Identity", "Cast") and node.input:
        return _scalar(nodes, node.input[0], depth - 1)
    if node.op == "Sub" and len(node.input) == 2:
        a, b = (_scalar(nodes, ref, depth - 1) for ref in node.input)
        return None if a is None or b is None else a - b
    return None
