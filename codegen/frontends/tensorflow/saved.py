"""TF2 models (SavedModel folders, Keras `.keras`/`.h5` files) as a frozen tf.Graph.

A TF2 model is a set of functions over resource variables. We take one concrete function
(a SavedModel signature, or the Keras model called with `training=False`), replace its
variable reads by constants (the steps of `convert_variables_to_constants_v2` that make the
GraphDef), inline the function calls
that remain (Keras wraps some convolutions in an XLA function), and strip the
`StatefulPartitionedCall/` prefix the wrapper adds to every name. Inputs and outputs come
from the function's signature, so no `--dst-node` is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegen.errors import InputError
from codegen.frontends.tensorflow import bn_decay, conditionals

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
WRAPPER_PREFIXES = ("StatefulPartitionedCall/", "PartitionedCall/")


@dataclass
class FrozenFunction:
    graph_def: Any
    inputs: list[str]  # placeholder op names, in signature order
    outputs: list[str]  # op names of the outputs, in signature order
    variables: dict[str, str] = field(default_factory=dict)  # Const op -> variable's own name
    trainable: set[str] = field(default_factory=set)  # the Const ops of trainable variables
    trainable_count: int | None = None  # the source's trainable parameters (shared ones once)
    # trainable variables the function never reads (a mask token used only in pretraining):
    # name -> size; they cannot be part of the converted model
    trainable_unread: dict[str, int] = field(default_factory=dict)
    # layer path -> its BatchNormalization momentum (bn_decay.py), where the source says
    bn_decays: dict[str, float] | None = None


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def is_keras_file(path: Path) -> bool:
    return path.suffix.lower() in KERAS_SUFFIXES


def load(tf, path: Path, signature: str = "serving_default") -> FrozenFunction:
    """A SavedModel folder (its `signature`) or a Keras file, frozen."""
    return load_saved_model(tf, path, signature) if path.is_dir() else load_keras(tf, path)


def load_saved_model(tf, path: Path, signature: str) -> FrozenFunction:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - TF raises many kinds; all mean "not usable"
        raise InputError(f"{path}: not a loadable SavedModel ({first_line(exc)})") from None
    signatures = dict(getattr(loaded, "signatures", {}))
    check_signature(path, signature, signatures)
    variables = getattr(loaded, "variables", ())
    # a Keras export lists what the model trains: a frozen layer's variables are not in it,
    # though their own `trainable` flag says they are (Whisper's encoder position table)
    trained = getattr(loaded, "trainable_variables", None) if variables else None
    # (a tf.Module's SavedModel lists none: the function's own name and train them)
    frozen = freeze(tf, signatures[signature], variables or signatures[signature].variables,
                    trained)
    if variables:
        frozen.trainable_count, frozen.trainable_unread = trainable_count(
            variables if trained is None else trained, frozen)
    else:  # a tf.Module's SavedModel lists no variables: those its function reads
        frozen.trainable_count, _ = trainable_count(signatures[signature].variables, None)
    return in_model_order(frozen, _positional_names(tf, loaded))


def check_signature(path: Path, signature: str, known) -> None:
    """InputError naming the signatures there are, when `signature` is not one of them."""
    if signature not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise InputError(f"{path}: no signature {signature!r} (signatures: {listed}); "
                         "choose one with --signature")


def in_model_order(frozen: FrozenFunction, order: list[str]) -> FrozenFunction:
    """`frozen` with its inputs in `order` (the model's own, where the SavedModel keeps it)
    when that names the same inputs: a signature sorts its inputs by name."""
    if sorted(order) == sorted(frozen.inputs):
        frozen.inputs = order
    return frozen


def _positional_names(tf, loaded) -> list[str]:
    """The input names in the order the model takes them, where the SavedModel keeps it: a
    Keras export's `serve` endpoint takes them positionally, as `model.inputs` lists them."""
    functions = getattr(getattr(loaded, "serve", None), "concrete_functions", None)
    if not functions:
        return []
    args = functions[0].structured_input_signature[0]
    specs = tf.nest.flatten(args)
    return [spec.name for spec in specs if isinstance(spec, tf.TensorSpec) and spec.name]


def load_keras(tf, path: Path) -> FrozenFunction:
    import keras

    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - corrupt zip/HDF5, unknown layers, ...
        model = _tf_keras_model(path)  # an .h5 written by tf_keras (Keras 2)
        if model is None:
            raise InputError(f"{path}: not a loadable Keras model ({first_line(exc)})") from None
    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=_input_name(tensor, i))
             for i, tensor in enumerate(model.inputs)]

    names = _input_keys(model)

    def call(*inputs):
        if names is not None:  # a model of named inputs (keras-hub's) takes a dict
            return model(dict(zip(names, inputs)), training=False)
        return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    frozen = freeze(tf, tf.function(call).get_concrete_function(*specs), model.variables)
    frozen.trainable_count, frozen.trainable_unread = trainable_count(model.trainable_weights,
                                                                      frozen)
    frozen.bn_decays = bn_decay.from_keras_layers(model)
    return frozen


def trainable_count(variables, frozen: FrozenFunction | None) -> tuple[int, dict[str, int]]:
    """The number of trainable values in `variables`, each variable once, and those of the
    ones `frozen` does not read (name -> size; none without `frozen`)."""
    import math

    unique = {id(variable): variable for variable in variables
              if getattr(variable, "trainable", False)}
    # (counted by variable: two may share a name, as T5's encoder and decoder position tables)
    count = sum(math.prod(variable.shape) for variable in unique.values())
    read = set(frozen.variables.values()) if frozen is not None else None
    unread = {variable_name(variable): math.prod(variable.shape) for variable in unique.values()
              if read is not None and variable_name(variable) not in read}
    return count, unread


def _input_keys(model) -> list[str] | None:
    """The key of each of `model.inputs` when the model was built on a dict of inputs."""
    try:
        struct = model.input
    except (AttributeError, ValueError):  # a model that was never called
        return None
    if not isinstance(struct, dict):
        return None
    keys = {id(tensor): key for key, tensor in struct.items()}
    return [keys[id(tensor)] for tensor in model.inputs]


def _tf_keras_model(path: Path):
    """A Keras 2 `.h5` file (tf_keras), which Keras 3 may not read; None if this fails too."""
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return None
    try:
        import tf_keras

        return tf_keras.models.load_model(str(path), compile=False)
    except Exception:  # noqa: BLE001 - not a tf_keras file either: Keras 3's message is shown
        return None


def freeze(tf, function, variables=(), trained=None) -> FrozenFunction:
    """The steps of `convert_variables_to_constants_v2` that make the frozen GraphDef; its
    last step, wrapping that GraphDef in a new ConcreteFunction, is skipped: it took 40% of
    the time of freezing BERT and held one more copy of the weights, for names we already
    have (the function's own input and output ops keep their names). `trained`: the
    variables the source trains, where it lists them (else each variable's flag says)."""
    from tensorflow.python.framework import convert_to_constants

    captured, trainable = _captured_variables(function, variables, trained)
    # while loops stay functional `While` ops (a body function each), where an RNN layer can be
    # recognised from its cell; lowered, they are a cycle of Enter/Merge/Switch nodes
    data = convert_to_constants._FunctionConverterDataInEager(
        func=function, lower_control_flow=False, aggressive_inlining=False)
    graph_def, _ = convert_to_constants._replace_variables_by_constants(data)
    del data  # the variables' values as numpy arrays, now copied into graph_def
    graph_def = inline_calls(graph_def)
    inputs = [t.op.name for t in function.inputs if t.dtype != tf.resource]
    outputs = [t.op.name for t in function.outputs]
    return finish(graph_def, inputs, outputs, captured, trainable)[0]


def finish(graph_def, inputs: list[str], outputs: list[str], captured: dict[str, str],
           trainable: set[str] = frozenset()) -> tuple[FrozenFunction, dict[str, str]]:
    """The frozen function of an inlined GraphDef whose variables are Consts: colocation
    hints dropped, names made short (the renames are returned too). `captured` maps each
    variable's Const to the variable's own name; `trainable` names the Consts of the
    trainable ones."""
    for node in graph_def.node:  # colocation hints may name nodes inlining removed
        if "_class" in node.attr:
            del node.attr["_class"]
    layers = {part for name in captured.values() for part in name.split("/")[:-1]}
    renames = _short_names(graph_def, keep=set(inputs) | set(outputs), layers=layers)
    _rename(graph_def, renames)
    consts = {node.name for node in graph_def.node if node.op == "Const"}
    names = {renames.get(op, op): name for op, name in captured.items()}
    frozen = FrozenFunction(graph_def, inputs, outputs,
                            {op: name for op, name in names.items() if op in consts},
                            {renames.get(op, op) for op in trainable} & consts)
    return frozen, renames


def _captured_variables(function, variables, listed=None) -> tuple[dict[str, str], set[str]]:
    """Placeholder op of each captured variable -> the variable's own name (Keras
    `variable.path`, else its TF name without ':0'), and the placeholders of the trainable
    ones (those of `listed`, when given; else by each variable's flag). Freezing turns each
    placeholder into a Const of the same name, so the IR can say which variable a weight
    came from and whether it is trained."""
    by_handle, trained = {}, set()
    listed = None if listed is None else {id(_handle(variable)) for variable in listed}
    for variable in variables:
        handle = _handle(variable)
        if handle is not None:
            by_handle[id(handle)] = variable_name(variable)
            if (getattr(variable, "trainable", False) if listed is None
                    else id(handle) in listed):
                trained.add(id(handle))
    captured = {internal.op.name: by_handle[id(external)]
                for external, internal in function.graph.captures if id(external) in by_handle}
    trainable = {internal.op.name for external, internal in function.graph.captures
                 if id(external) in trained}
    return captured, trainable


def _handle(variable):
    handle = getattr(variable, "handle", None)
    if handle is None:  # a Keras 3 variable wraps a tf.Variable
        handle = getattr(getattr(variable, "value", None), "handle", None)
    return handle


variable_name = bn_decay.variable_name  # (there because bn_decay.py needs it too)


CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")


def inline_calls(graph_def):
    """Replace each function call node (Keras puts some convolutions in XLA functions) by
    the function's body, named `<call>/<node>`, until none is left."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    functions = {f.signature.name: f for f in graph_def.library.function}
    for _ in range(16):  # calls inside inlined bodies are inlined in the next round
        calls = [node for node in graph_def.node if node.op in CALL_OPS]
        # (and tf.cond's branches where torch.where can run both: conditionals.py)
        if not conditionals.inline_branches(graph_def) and not calls:
            break
        for call in calls:
            _inline(graph_def, call, functions[call.attr["f"].func.name],
                    function_def_to_graph_def)
    return graph_def


def _inline(graph_def, call, function, to_graph_def) -> None:
    body, flat_names = to_graph_def(function)
    prefix = call.name + "/"
    arguments = dict(zip((arg.name for arg in function.signature.input_arg),
                         (ref for ref in call.input if not ref.startswith("^"))))

    def outer(ref: str) -> str:
        name, _, port = ref.partition(":")
        if name in arguments:
            return arguments[name]
        return prefix + name + (f":{port}" if port and port != "0" else "")

    nodes = []
    for node in body.node:
        if node.name in arguments:
            continue  # the argument placeholders: their users read the call's inputs
        copy = graph_def.node.add()
        copy.CopyFrom(node)
        copy.name = prefix + node.name
        del copy.input[:]
        copy.input.extend(outer(ref) for ref in node.input if not ref.startswith("^"))
        nodes.append(copy)
    results = [outer(flat_names.get(function.ret[arg.name], function.ret[arg.name]))
               for arg in function.signature.output_arg]
    for node in graph_def.node:
        if f"^{call.name}" in node.input:  # control edges to the call go away with it
            node.input.remove(f"^{call.name}")
        for index, ref in enumerate(node.input):
            name, _, port = ref.partition(":")
            if name == call.name:
                node.input[index] = results[int(port or 0)]
    graph_def.node.remove(call)


def _short_names(graph_def, keep: set[str], layers: set[str] = frozenset()) -> dict[str, str]:
    """Readable node names, where they stay unique: no wrapper prefix, and Keras layer
    scopes split into stage/block/layer (see `_layer_path`). `layers`: the scope names the
    variables' own paths use (`self_attention_layer`, `query`)."""
    names = {node.name for node in graph_def.node}
    stripped = {name: _strip_wrapper(name) for name in names - keep}
    tops = {parts[1] for parts in (n.split("/") for n in stripped.values()) if len(parts) > 2}
    # tracing a Keras model a second time names (nearly) every layer scope `<layer>_1`
    suffixed = sum(layer.endswith("_1") for layer in tops) > 0.8 * len(tops)
    renames, taken = {}, set(names)
    for name in sorted(stripped):
        parts = stripped[name].split("/")
        if suffixed and len(parts) > 1:  # (the model's own ops too, e.g. a Keras mask)
            parts[0] = parts[0].removesuffix("_1")
        if len(parts) > 2:  # model/layer/op...: the Keras layout
            if suffixed:
                parts[1] = parts[1].removesuffix("_1")
                # a sublayer's scope too (`query_1`), where a variable's path names the
                # layer (`query`) and not the suffixed name; others keep theirs (`einsum_1`
                # may be a second einsum, `add_1` a second add)
                parts[2:-1] = [part[:-2] if part.endswith("_1") and part[:-2] in layers
                               and part not in layers else part for part in parts[2:-1]]
            parts[1:2] = _layer_path(parts[1])
        short = "/".join(parts)
        if short != name and short not in taken:
            renames[name] = short
            taken.add(short)
    return renames


def _strip_wrapper(name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


BLOCK = re.compile(r"^(?:(?P<stage>.+?)_)?(?P<block>block_?\d+[a-z]?)_(?P<layer>.+)$")


def _layer_path(layer: str) -> list[str]:
    """Keras applications name layers `<stage>_<block>_<layer>` (conv2_block1_1_conv,
    block_1_expand, block1a_se_squeeze): as scopes, repeated blocks become one class."""
    match = BLOCK.match(layer)
    if match is None:
        return [layer]
    return [part for part in match.group("stage", "block", "layer") if part]


def _rename(graph_def, renames: dict[str, str]) -> None:
    if not renames:
        return
    for node in graph_def.node:
        node.name = renames.get(node.name, node.name)
        for index, ref in enumerate(node.input):
            control = ref.startswith("^")
            name, colon, port = ref.lstrip("^").partition(":")
            if name in renames:
                node.input[index] = ("^" if control else "") + renames[name] + colon + port


def _input_name(tensor, index: int) -> str:
    name = getattr(tensor, "name", "") or f"input_{index}"
    return name.split(":")[0].replace("/", "_")


def first_line(exc: Exception) -> str:
    """The first line of an exception's message, for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
