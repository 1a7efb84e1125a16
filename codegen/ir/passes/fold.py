"""Small exact simplifications: drop identities, fold bias adds and zero pads into
the convolution before them / after them."""

from __future__ import annotations

from codegen.ir.graph import Graph, Node

CONVS = ("conv1d", "conv2d", "conv3d")
BIASED = (*CONVS, "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear")


def _single_reader(graph: Graph, node: Node) -> Node | None:
    """The only node reading `node`'s output, if it is not also a graph output."""
    ref = f"{node.name}:0"
    if any(output.source == ref for output in graph.outputs):
        return None
    readers = [n for n in graph.nodes.values() if ref in n.inputs]
    return readers[0] if len(readers) == 1 and readers[0].inputs.count(ref) == 1 else None


def _remove(graph: Graph, node: Node) -> None:
    """Remove a one-input node, wiring its readers to its input."""
    graph.replace_uses(f"{node.name}:0", node.inputs[0])
    del graph.nodes[node.name]


def drop_identities(graph: Graph) -> Graph:
    for node in [n for n in graph.nodes.values() if n.op == "identity"]:
        _remove(graph, node)
    return graph


FLOATS = ("float16", "bfloat16", "float32", "float64")


def drop_float_casts(graph: Graph) -> Graph:
    """In a model whose weights are bfloat16 or float16, casts between float dtypes are the
    source's precision plumbing (Keras computes a norm in float32 and casts back): the
    generated model computes in its parameters' dtype (`load_model(dtype=...)`; PyTorch's
    norms and softmax accumulate in float32 themselves), so they are dropped."""
    if not any(entry.dtype in ("bfloat16", "float16") for entry in graph.weights.values()):
        return graph
    for node in [n for n in graph.nodes.values() if n.op == "cast"]:
        if graph.tensor(node.inputs[0]).dtype in FLOATS and node.attrs["dtype"] in FLOATS:
            _remove(graph, node)
    return graph


# op -> (the value that changes nothing, the operand positions it may take)
NEUTRAL = {"add": (0.0, (0, 1)), "sub": (0.0, (1,)), "mul": (1.0, (0, 1)), "div": (1.0, (1,))}


def drop_neutral_arithmetic(graph: Graph) -> Graph:
    """`x + 0.0`, `x - 0.0`, `x * 1.0`, `x / 1.0` with a scalar (Keras' Rescaling with no
    offset) -> x, where the result has x's shape and dtype (exact: the values are equal)."""
    outputs = {output.source for output in graph.outputs}
    for node in [n for n in graph.nodes.values() if n.op in NEUTRAL]:
        value, positions = NEUTRAL[node.op]
        if len(node.inputs) != 2 or f"{node.name}:0" in outputs:
            continue
        for position in positions:
            scalar = _producer(graph, node.inputs[position])
            other = node.inputs[1 - position]
            if (scalar is None or scalar.op != "scalar" or scalar.attrs.get("value") != value
                    or _info(graph, other) != (node.outputs[0].shape, node.outputs[0].dtype)):
                continue
            graph.replace_uses(f"{node.name}:0", other)
            del graph.nodes[node.name]
            if not any(f"{scalar.name}:0" in n.inputs for n in graph.nodes.values()):
                del graph.nodes[scalar.name]
            break
    return graph


def _info(graph: Graph, ref: str) -> tuple | None:
    """(shape, dtype) of a tensor."""
    name, _, index = ref.rpartition(":")
    if name in graph.nodes:
        info = graph.nodes[name].outputs[int(index)]
        return info.shape, info.dtype
    found = next((i for i in graph.inputs if i.name == name), None)
    return None if found is None else (found.shape, found.dtype)


def fold_bias(graph: Graph) -> Graph:
    """conv2d/linear followed by bias_add, or by an add of a per-channel constant (TF1's
    `tf.matmul(x, w) + b`) -> conv2d/linear with a bias."""
    for node in [n for n in graph.nodes.values() if n.op in ("bias_add", "add")]:
        found = _layer_and_bias(graph, node)
        if found is None:
            continue
        producer, constant = found
        if constant is None:
            producer.weights["bias"] = node.weights["bias"]
        else:  # the add's constant operand, read as [channels]; it has no other reader
            graph.transform_weight(constant, "value", ("reshape", (producer.outputs[0].shape[1],)))
            producer.weights["bias"] = constant.weights["value"]
            del graph.nodes[constant.name]
        graph.tf_tensors[f"{producer.name}:0"] = graph.tf_tensor(f"{node.name}:0")
        node.inputs = [ref for ref in node.inputs if _producer(graph, ref) is producer]
        _remove(graph, node)
    return graph


def _producer(graph: Graph, ref: str) -> Node | None:
    return graph.nodes.get(ref.rpartition(":")[0])


def _layer_and_bias(graph: Graph, node: Node) -> tuple[Node, Node | None] | None:
    """(the conv2d/linear `node` adds a bias to, the constant node holding that bias or None
    for a bias_add), when the bias can be folded into it; else None. Changes nothing."""
    producer, constant = _producer(graph, node.inputs[0]), None
    if node.op == "add":  # which operand is the constant does not matter
        constant = _producer(graph, node.inputs[1])
        if producer is not None and producer.op == "constant":
            producer, constant = constant, producer
        if (constant is None or constant.op != "constant"
                or _single_reader(graph, constant) is not node):
            return None
    if (producer is None or producer.op not in BIASED or "bias" in producer.weights
            or _single_reader(graph, producer) is not node):
        return None
    if constant is not None and not _per_channel(graph, constant, producer):
        return None
    return producer, constant


def _per_channel(graph: Graph, constant: Node, layer: Node) -> bool:
    """The constant adds one value per output channel of `layer`: shape [C], or
    [1, C, 1, 1] against NCHW."""
    channels = layer.outputs[0].shape[1]
    shape = graph.weights[constant.weights["value"]].out_shape
    per_pixel = [1, channels] + [1] * (layer.outputs[0].rank - 2) if layer.op != "linear" else [channels]
    return channels is not None and shape in ([channels], per_pixel)


def fold_pad(graph: Graph) -> Graph:
    """A zero pad of the spatial axes before a conv becomes the conv's padding (a causal
    Conv1D's pad of k - 1 steps in front, too).

    Runs after padding resolution, on NCHW graphs, where conv padding is explicit.
    """
    for node in [n for n in graph.nodes.values() if n.op == "pad"]:
        reader = _single_reader(graph, node)
        pads = node.attrs["pads"]
        if (
            reader is None
            or reader.op not in CONVS
            or not isinstance(reader.attrs["padding"], list)
            or node.attrs["mode"] != "constant"
            or node.attrs.get("value", 0.0) != 0.0
            or len(pads) != len(reader.attrs["padding"]) + 2
            or pads[0] != [0, 0]
            or pads[1] != [0, 0]
        ):
            continue
        reader.attrs["padding"] = [
            [before + pad_before, after + pad_after]
            for (before, after), (pad_before, pad_after) in zip(reader.attrs["padding"], pads[2:])
        ]
        _remove(graph, node)
    return graph
