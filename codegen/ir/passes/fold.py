"""Small exact simplifications: drop identities, fold bias adds and zero pads into
the convolution before them / after them."""

from __future__ import annotations

from codegen.ir.graph import Graph, Node


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


def fold_bias(graph: Graph) -> Graph:
    """conv2d/linear followed by bias_add, or by an add of a per-channel constant (TF1's
    `tf.matmul(x, w) + b`) -> conv2d/linear with a bias."""
    for node in [n for n in graph.nodes.values() if n.op in ("bias_add", "add")]:
        found = _layer_and_bias(graph, node)
        if found is None:
            continue
        producer, bias = found
        producer.weights["bias"] = bias
        graph.tf_tensors[f"{producer.name}:0"] = graph.tf_tensor(f"{node.name}:0")
        others = [_producer(graph, ref) for ref in node.inputs]
        node.inputs = [ref for ref, other in zip(node.inputs, others) if other is producer]
        _remove(graph, node)
        for constant in others:  # the add's constant operand has no other reader
            if constant is not producer and node.op == "add":
                del graph.nodes[constant.name]
    return graph


def _producer(graph: Graph, ref: str) -> Node | None:
    return graph.nodes.get(ref.rpartition(":")[0])


def _layer_and_bias(graph: Graph, node: Node) -> tuple[Node, str] | None:
    """(the conv2d/linear `node` adds a bias to, the bias weight), or None."""
    producer = _producer(graph, node.inputs[0])
    if node.op == "bias_add":
        bias = node.weights["bias"]
    else:  # add: which operand is the constant does not matter
        constant = _producer(graph, node.inputs[1])
        if (constant is not None and constant.op != "constant"
                and producer is not None and producer.op == "constant"):
            producer, constant = constant, producer
        if constant is None or constant.op != "constant" or _single_reader(graph, constant) is not node:
            return None
        bias = _per_channel(graph, constant, producer)
    if (producer is None or producer.op not in ("conv2d", "linear") or "bias" in producer.weights
            or _single_reader(graph, producer) is not node or bias is None):
        return None
    return producer, bias


def _per_channel(graph: Graph, constant: Node, layer: Node | None) -> str | None:
    """The constant as a [channels] weight if it adds one value per output channel of
    `layer` (shape [C], or [1, C, 1, 1] against NCHW), else None."""
    if layer is None or layer.op not in ("conv2d", "linear"):
        return None
    entry = graph.weights[constant.weights["value"]]
    channels = layer.outputs[0].shape[1]
    shape = [1, channels, 1, 1] if layer.op == "conv2d" else [channels]
    if channels is None or entry.out_shape not in ([channels], shape):
        return None
    if entry.out_shape != [channels]:
        graph.transform_weight(constant, "value", ("reshape", (channels,)))
    return constant.weights["value"]


def fold_pad(graph: Graph) -> Graph:
    """A zero pad of the spatial axes before a conv2d becomes the conv's padding.

    Runs after padding resolution, on NCHW graphs, where conv padding is explicit.
    """
    for node in [n for n in graph.nodes.values() if n.op == "pad"]:
        reader = _single_reader(graph, node)
        pads = node.attrs["pads"]
        if (
            reader is None
            or reader.op != "conv2d"
            or not isinstance(reader.attrs["padding"], list)
            or node.attrs["mode"] != "constant"
            or node.attrs.get("value", 0.0) != 0.0
            or len(pads) != 4
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
