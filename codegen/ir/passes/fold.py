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
    """conv2d/linear followed by bias_add -> conv2d/linear with a bias."""
    for node in [n for n in graph.nodes.values() if n.op == "bias_add"]:
        producer = graph.nodes.get(node.inputs[0].rpartition(":")[0])
        if (
            producer is not None
            and producer.op in ("conv2d", "linear")
            and "bias" not in producer.weights
            and _single_reader(graph, producer) is node
        ):
            producer.weights["bias"] = node.weights["bias"]
            graph.tf_tensors[f"{producer.name}:0"] = graph.tf_tensor(f"{node.name}:0")
            _remove(graph, node)
    return graph


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
