"""A TF2 SavedModel read from its files, without `tf.saved_model.load`.

`tf.saved_model.load` imports all of TensorFlow, builds every function of the model and
restores every variable: for BERT-base, 1.6 GB before the converter looks at a node. Here
the signature's function is read from `saved_model.pb` as a GraphDef, each variable it
captures is matched to its checkpoint key through the model's own restore function, and
becomes a Const whose value is read from `variables/` tensor by tensor, when the converter
asks for it (`CheckpointValues`), as the TF1 checkpoint path does.

Only the common form is read this way: every captured variable is read by ReadVariableOp
alone. When a variable flows into anything else (the `While` loop of a Keras RNN, a
condition) or the files hold something unexpected, `load()` returns None and the caller
freezes the model through `tf.saved_model.load` (saved.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from codegen.frontends.tensorflow import saved, saved_variables

# float constants this large stay out of the tf.Graph (loader._set_aside), and a
# SavedModel's float variables this large stay on disk until read (here); TF's float
# DataType enums -> (numpy dtype name, the TensorProto field one zero goes in)
ASIDE_BYTES = 1 << 16
ASIDE_DTYPES = {1: ("float32", "float_val"), 2: ("float64", "double_val"),
                19: ("float16", "half_val"), 14: ("bfloat16", "half_val")}


class CheckpointValues(Mapping):
    """Const op name -> its value, read from the checkpoint each time it is asked for."""

    def __init__(self, reader, keys: dict[str, str]):
        self.reader, self.keys = reader, keys

    def __getitem__(self, name: str):
        return self.reader.get_tensor(self.keys[name])

    def __contains__(self, name: object) -> bool:  # (Mapping's would read the tensor)
        return name in self.keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class Streamed:
    frozen: saved.FrozenFunction
    values: CheckpointValues  # the variables left out of frozen.graph_def


def load(tf, path: Path, signature: str) -> Streamed | None:
    """The signature's function with its variables as Consts, or None (see the module)."""
    meta = _meta_graph(path)
    if meta is None:
        return None
    saved.check_signature(path, signature,
                          {name for name in meta.signature_def if not name.startswith("__")})
    nodes = {node.name: node for node in meta.graph_def.node}
    functions = {f.signature.name: f for f in meta.graph_def.library.function}
    call = _signature_call(meta.signature_def[signature], nodes)
    keys = _checkpoint_keys(meta, nodes, functions)
    if call is None or keys is None or call.attr["f"].func.name not in functions:
        return None
    function = functions[call.attr["f"].func.name]
    # what the call passes each argument: an input, a variable or a captured constant
    sources = {arg.name: nodes.get(ref.split(":")[0])
               for arg, ref in zip(function.signature.input_arg, call.input)}
    if any(node is None or node.op not in ("Placeholder", "VarHandleOp", "Const")
           for node in sources.values()):
        return None
    handles = {arg: node.name for arg, node in sources.items() if node.op == "VarHandleOp"}
    reader = _open_checkpoint(tf, path)
    if reader is None or any(handle not in keys for handle in handles.values()):
        return None
    graph_def = _function_graph(tf, function, meta.graph_def)
    _constants_to_consts(graph_def, {arg: node for arg, node in sources.items() if node.op == "Const"})
    aside = _variables_to_consts(graph_def, {arg: keys[h] for arg, h in handles.items()}, reader)
    if aside is None:
        return None
    inputs = [arg for arg, node in sources.items() if node.op == "Placeholder"]
    outputs = [function.ret[arg.name].split(":")[0] for arg in function.signature.output_arg]
    read = {keys[handle] for handle in handles.values()}
    table = saved_variables.read(meta.object_graph_def, reader, read)
    if table is None:
        return None
    captured = {arg: table.names.get(keys[handle]) or nodes[handle].attr["shared_name"].s.decode()
                for arg, handle in handles.items()}
    trainable = {arg for arg, handle in handles.items() if keys[handle] in table.trained}
    frozen, renames = saved.finish(graph_def, inputs, outputs, captured, trainable)
    frozen = saved.in_model_order(frozen, _positional_names(meta.object_graph_def))
    values = CheckpointValues(reader, {renames.get(op, op): key for op, key in aside.items()})
    frozen.trainable_count, frozen.trainable_unread = table.count, table.unread
    return Streamed(frozen, values)


def _meta_graph(path: Path):
    """The one MetaGraphDef of saved_model.pb, or None (damaged, or several: the loading
    path gives the message or makes the choice)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception:  # noqa: BLE001 - protobuf raises several kinds
        return None
    return model.meta_graphs[0] if len(model.meta_graphs) == 1 else None


def _open_checkpoint(tf, path: Path):
    try:
        return tf.CheckpointReader(str(path / "variables" / "variables"))
    except (tf.errors.OpError, ValueError):  # no variables folder: the loading path decides
        return None


def _constants_to_consts(graph_def, constants: dict) -> None:
    """Each argument that the call passes a captured constant (ViT's class token id) becomes
    that Const."""
    for node in graph_def.node:
        if node.name in constants:
            node.op = "Const"
            node.ClearField("attr")
            node.attr.MergeFrom(constants[node.name].attr)


def _signature_call(signature, nodes):
    """The one function call whose outputs are the signature's outputs (a Keras export and
    a tf.Module save both write a signature this way)."""
    names = {tensor.name.split(":")[0] for tensor in signature.outputs.values()}
    if len(names) != 1:
        return None
    call = nodes.get(names.pop())
    return call if call is not None and call.op in saved.CALL_OPS else None


def _checkpoint_keys(meta, nodes, functions) -> dict[str, str] | None:
    """VarHandleOp name -> checkpoint key, read from the restore function: its RestoreV2
    reads the keys, and each AssignVariableOp writes one of them into one handle."""
    restore = nodes.get(meta.saver_def.restore_op_name)
    if restore is None or restore.op not in saved.CALL_OPS:
        return None
    function = functions.get(restore.attr["f"].func.name)
    if function is None:
        return None
    handle_of = {arg.name: ref.split(":")[0]
                 for arg, ref in zip(function.signature.input_arg, restore.input)}
    body = {node.name: node for node in function.node_def}
    keys = {}
    for node in function.node_def:
        if node.op != "AssignVariableOp":
            continue
        key = _restored_key(node.input[1], body)
        handle = handle_of.get(node.input[0].split(":")[0])
        if key is None or handle is None:
            return None
        keys[handle] = key
    return keys


def _restored_key(ref: str, body) -> str | None:
    """The checkpoint key behind `ref` (a chain of Identity ops ending at RestoreV2)."""
    for _ in range(8):
        name, *rest = ref.split(":")
        node = body.get(name)
        if node is None:
            return None
        if node.op == "RestoreV2":  # ref is "RestoreV2:tensors:<index>"
            names = body.get(node.input[1].split(":")[0])
            if names is None or names.op != "Const" or len(rest) != 2:
                return None
            return names.attr["value"].tensor.string_val[int(rest[1])].decode()
        if node.op != "Identity":
            return None
        ref = node.input[0]
    return None


def _function_graph(tf, function, source_graph):
    """The function's body as a GraphDef (its arguments as Placeholders), calls inlined.
    TF reads a body in a graph that knows the functions it calls: one holding just the
    library."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    library = tf.GraphDef()
    library.versions.CopyFrom(source_graph.versions)
    library.library.CopyFrom(source_graph.library)
    with tf.Graph().as_default():
        tf.import_graph_def(library, name="")
        graph_def, _ = function_def_to_graph_def(function)
        graph_def.versions.CopyFrom(source_graph.versions)
        graph_def.library.CopyFrom(source_graph.library)
        return saved.inline_calls(graph_def)


def _variables_to_consts(graph_def, variables: dict[str, str], reader) -> dict[str, str] | None:
    """Each variable argument (a resource Placeholder) becomes a Const of its value, each
    ReadVariableOp of it an Identity, as `convert_variables_to_constants_v2` does. Large
    float values stay in the checkpoint: the Const holds one zero repeated to its shape,
    and the returned map names its key. None if a variable is used another way."""
    from tensorflow.core.framework.types_pb2 import DT_RESOURCE
    from tensorflow.python.framework.tensor_util import make_tensor_proto

    for node in graph_def.node:
        for ref in node.input:
            source = ref.lstrip("^").split(":")[0]
            if source in variables and node.op != "ReadVariableOp" and not ref.startswith("^"):
                return None  # into a loop, a condition, a call we could not inline...
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    aside = {}
    for node in graph_def.node:
        if node.op == "ReadVariableOp":
            dtype = node.attr["dtype"].type
            del node.attr["dtype"]
            node.op = "Identity"
            node.attr["T"].type = dtype
        elif node.name in variables and node.attr["dtype"].type == DT_RESOURCE:
            key = variables[node.name]
            shape, dtype = shapes[key], dtypes[key]
            node.op = "Const"
            node.ClearField("attr")
            node.attr["dtype"].type = dtype.as_datatype_enum
            tensor = node.attr["value"].tensor
            kind = dtype.as_datatype_enum
            if kind in ASIDE_DTYPES and math.prod(shape) * dtype.size >= ASIDE_BYTES:
                tensor.dtype = kind
                for dim in shape:
                    tensor.tensor_shape.dim.add(size=dim)
                getattr(tensor, ASIDE_DTYPES[kind][1]).append(0)
                aside[node.name] = key
            else:
                tensor.CopyFrom(make_tensor_proto(reader.get_tensor(key)))
    return aside


def _positional_names(object_graph) -> list[str]:
    """The input names in the order the model takes them, where the SavedModel keeps it: a
    Keras export's `serve` endpoint takes them positionally, as `model.inputs` lists them."""
    root = object_graph.nodes[0] if object_graph.nodes else None
    serve = next((child.node_id for child in getattr(root, "children", ())
                  if child.local_name == "serve"), None)
    if serve is None or object_graph.nodes[serve].WhichOneof("kind") != "function":
        return []
    concrete = object_graph.nodes[serve].function.concrete_functions
    if not concrete:
        return []
    try:
        from tensorflow.python.saved_model import nested_structure_coder
        from tensorflow.python.util import nest

        args, _ = nested_structure_coder.decode_proto(
            object_graph.concrete_functions[concrete[0]].canonicalized_input_signature)
    except Exception:  # noqa: BLE001 - an encoding we do not know: keep the signature's order
        return []
    return [spec.name for spec in nest.flatten(args) if getattr(spec, "name", None)]
