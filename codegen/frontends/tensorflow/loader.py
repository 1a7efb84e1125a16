"""Load a TensorFlow model into a tf.Graph plus a reader for its variables.

Supported: a TF1 checkpoint (`.meta` + checkpoint prefix), a frozen GraphDef (`.pb`), a
TF2 SavedModel folder and a Keras `.keras`/`.h5` file (the last two via `saved.py`, frozen,
with their inputs and outputs from the signature). Checkpoint variables are read tensor by
tensor, never all at once.
"""

from __future__ import annotations

import math
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codegen.dtypes import numpy_dtype
from codegen.errors import InputError
from codegen.frontends.tensorflow import bn_decay, conditionals, saved, saved_files
from codegen.frontends.tensorflow.compat import import_tf, import_tf_core


@dataclass
class TFModel:
    graph: Any  # tf.Graph with every node of the model, shapes inferred
    reader: Any | None  # tf.train.CheckpointReader, or None for frozen graphs
    model_path: Path
    weights_path: Path | None
    outputs: list[str] = field(default_factory=list)  # default output ops (from a signature)
    inputs: list[str] = field(default_factory=list)  # placeholders in the source's order
    # layer path -> the decay (Keras momentum) of its BatchNorm, as far as the source
    # records it (bn_decay.py)
    bn_decays: dict[str, float] = field(default_factory=dict)
    # Const op of a frozen TF2 function -> the variable it holds (Keras `variable.path`)
    source_names: dict[str, str] = field(default_factory=dict)
    # Const op -> its value, kept out of `graph` (load_model(weights_aside=True)); in the
    # graph the Const holds one zero, repeated to its shape
    aside: Mapping[str, Any] = field(default_factory=dict)
    # the trainable variables: Const ops of a frozen TF2 function, or TF1 variable names
    # (the meta graph's TRAINABLE_VARIABLES collection)
    trainable: set[str] = field(default_factory=set)
    trainable_count: int | None = None  # the source's trainable values (None: not known)
    trainable_unread: dict[str, int] = field(default_factory=dict)  # (saved.FrozenFunction)

    def variable_names(self) -> set[str]:
        return set(self.reader.get_variable_to_shape_map()) if self.reader else set()


def checkpoint_prefix(model: Path, weights: Path | None) -> Path:
    """The checkpoint prefix for `-w` (a prefix, an .index/.data file, or a folder)."""
    if weights is None:
        if model.suffix == ".meta":
            return model.with_suffix("")
        raise InputError(f"{model}: give the checkpoint with -w PREFIX")
    weights = Path(weights)
    if weights.is_dir():
        indexes = sorted(weights.glob("*.index"))
        if len(indexes) != 1:
            raise InputError(f"{weights}: expected one checkpoint (*.index) in the folder")
        return indexes[0].with_suffix("")
    for suffix in (".index", ".meta"):
        if weights.suffix == suffix:
            return weights.with_suffix("")
    if ".data-" in weights.name:
        return weights.with_name(weights.name.split(".data-")[0])
    return weights


def load_model(model: Path, weights: Path | None = None, *,
               signature: str = "serving_default", only: list[str] | None = None,
               weights_aside: bool = False) -> TFModel:
    """Load a checkpoint, frozen graph, SavedModel or Keras file; InputError on bad files.

    With `only` (output node names) just what they depend on is imported: savers,
    initialisers, optimisers and summaries are left out, and loading is faster.
    With `weights_aside`, the large float constants of a frozen TF2 model stay out of the
    tf.Graph (`TFModel.aside`): importing them copied the weights three more times."""
    model = Path(model)
    outputs: list[str] = []
    inputs: list[str] = []
    bn_decays: dict[str, float] = {}
    source_names: dict[str, str] = {}
    trainable: set[str] = set()
    trainable_count = None  # a frozen GraphDef does not say
    trainable_unread: dict[str, int] = {}
    if model.is_dir() and not saved.is_saved_model(model):
        raise InputError(f"{model}: a folder, but not a SavedModel (no saved_model.pb in it)")
    if not model.exists():
        raise InputError(f"{model}: no such model file")
    tf2 = saved.is_saved_model(model) or saved.is_keras_file(model)
    tf = import_tf_core()  # enough for checkpoints and frozen graphs, and quick to import
    # a SavedModel's variables can stay in its checkpoint until each is read
    streamed = (saved_files.load(tf, model, signature)
                if weights_aside and saved.is_saved_model(model) else None)
    if tf2:  # (loaded with tf.saved_model.load or Keras: the whole TensorFlow)
        frozen = streamed.frozen if streamed else saved.load(import_tf(), model, signature)
        graph_def, prefix, reader, outputs = frozen.graph_def, None, None, frozen.outputs
        source_names, inputs = frozen.variables, frozen.inputs
        bn_decays = (bn_decay.from_keras_metadata(model) if saved.is_saved_model(model)
                     else frozen.bn_decays) or {}
        trainable, trainable_count = frozen.trainable, frozen.trainable_count
        trainable_unread = frozen.trainable_unread
    elif model.suffix == ".meta":
        meta = _read_meta_graph(tf, model)  # a damaged .meta is the first thing to fix
        graph_def, trainable = conditionals.inline_all(meta.graph_def), trainable_variables(meta)
        prefix = checkpoint_prefix(model, weights)
        _check_checkpoint_files(prefix)
        reader = _open_checkpoint(tf, prefix)
        shapes = reader.get_variable_to_shape_map()
        trainable_count = sum(math.prod(shapes[name]) for name in trainable if name in shapes)
    elif model.suffix == ".pb":
        graph_def = conditionals.inline_all(_parse(tf.GraphDef(), model, "a frozen GraphDef"))
        prefix, reader = None, None
    else:
        raise InputError(f"{model}: unknown model format (expected .meta, .pb, .keras, .h5 "
                         "or a SavedModel folder)")
    if not tf2:  # a graph exported for training updates its moving statistics
        bn_decays = bn_decay.from_graph(graph_def)
    if only:
        graph_def = _needed(graph_def, only)
    _placeholders_v1(graph_def)
    aside = _set_aside(graph_def) if tf2 and weights_aside else {}
    if streamed:
        aside = ChainMap(aside, streamed.values)
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        raise InputError(f"{model}: the graph cannot be loaded ({saved.first_line(exc)}); it may need "
                         "ops of a newer TensorFlow or be damaged: export it again") from None
    return TFModel(graph=graph, reader=reader, model_path=model, weights_path=prefix,
                   outputs=outputs, inputs=inputs, source_names=source_names,
                   bn_decays=bn_decays, aside=aside, trainable=trainable,
                   trainable_count=trainable_count, trainable_unread=trainable_unread)


# float constants this large stay out of the tf.Graph (and a SavedModel's float variables this
# large stay on disk until read), with the TensorProto field one zero goes in: saved_files.py
ASIDE_BYTES, ASIDE_DTYPES = saved_files.ASIDE_BYTES, saved_files.ASIDE_DTYPES


def _set_aside(graph_def) -> dict[str, Any]:
    """Take the value of each float Const (float32, float64, float16, bfloat16) of 64 KiB
    or more out of `graph_def` (a view of its bytes) and leave one zero in its place, which
    TF repeats to the Const's shape: shapes and dtypes stay; a run of the graph sees zeros
    there (the converter runs only shape computations on it, and constant subgraphs as
    graphs of their own, values put back)."""
    aside = {}
    for node in graph_def.node:
        tensor = node.attr["value"].tensor if node.op == "Const" else None
        if tensor is None or tensor.dtype not in ASIDE_DTYPES \
                or len(tensor.tensor_content) < ASIDE_BYTES:
            continue
        dtype, field = ASIDE_DTYPES[tensor.dtype]
        shape = [dim.size for dim in tensor.tensor_shape.dim]
        aside[node.name] = np.frombuffer(tensor.tensor_content, numpy_dtype(dtype)).reshape(shape)
        tensor.ClearField("tensor_content")
        getattr(tensor, field).append(0)
    return aside


def _placeholders_v1(graph_def) -> None:
    """PlaceholderV2 (graphs of GraphDef version < 23) as Placeholder, which behaves the same
    since then: TF no longer imports it into a newer graph, and the converter, verify and the
    tools know model inputs as Placeholders."""
    for node in graph_def.node:
        if node.op == "PlaceholderV2":
            node.op = "Placeholder"


def _needed(graph_def, outputs: list[str]):
    """The nodes `outputs` depend on (all of the graph if one of them is not in it, so that
    the unknown name is reported with suggestions from the whole graph)."""
    nodes = {node.name: node for node in graph_def.node}
    names = [name.split(":")[0] for name in outputs]
    if not all(name in nodes for name in names):
        return graph_def
    keep, stack = set(), names
    while stack:
        name = stack.pop()
        if name not in keep:
            keep.add(name)
            stack.extend(ref.lstrip("^").split(":")[0] for ref in nodes[name].input)
    needed = type(graph_def)()
    needed.versions.CopyFrom(graph_def.versions)
    needed.library.CopyFrom(graph_def.library)
    needed.node.extend(node for node in graph_def.node if node.name in keep)
    return needed


def _read_meta_graph(tf, path: Path):
    meta = _parse(tf.MetaGraphDef(), path, "a MetaGraphDef")
    if not meta.graph_def.node:
        raise InputError(f"{path}: the MetaGraphDef holds no graph; save it again with "
                         "tf.train.Saver (write_meta_graph=True)")
    return meta


def trainable_variables(meta) -> set[str]:
    """The op names of the variables in a MetaGraphDef's TRAINABLE_VARIABLES collection."""
    from tensorflow.core.framework.variable_pb2 import VariableDef

    names = set()
    for raw in meta.collection_def["trainable_variables"].bytes_list.value:
        variable = VariableDef()
        variable.ParseFromString(raw)
        names.add(variable.variable_name.split(":")[0])
    return names


def _parse(message, path: Path, what: str):
    from google.protobuf.message import DecodeError

    try:
        message.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeWarning, ValueError):
        raise InputError(f"{path}: not {what} (file damaged or of another kind); pass the .meta "
                         "written by tf.train.Saver or a frozen .pb") from None
    return message


def _check_checkpoint_files(prefix: Path) -> None:
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        raise InputError(f"{index}: checkpoint index is missing; pass the prefix with -w")
    data_files = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    if not data_files:
        raise InputError(f"{prefix}.data-00000-of-00001: checkpoint data is missing; put the "
                         ".data-* file(s) beside the .index file or pass the prefix with -w")


def _open_checkpoint(tf, prefix: Path):
    try:
        return tf.CheckpointReader(str(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise InputError(f"{prefix}: the checkpoint cannot be read ({saved.first_line(exc)}); "
                         "download or save it again") from None
