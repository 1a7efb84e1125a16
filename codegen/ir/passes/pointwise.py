"""Dense layers applied to every pixel, as 1x1 convolutions.

Keras' Dense on a rank-4 tensor (ConvNeXt's pointwise layers) reaches the graph as
tf.tensordot: reshape [N, H, W, C] -> [N*H*W, C], matmul, reshape back to [N, H, W, C'].
In NCHW that would need two permutes and two reshapes around an nn.Linear; a 1x1 conv
computes the same sums directly on NCHW. Runs before the layout pass (NHWC graphs).
"""

from __future__ import annotations

from codegen.ir.graph import Graph
from codegen.ir.passes.fold import _producer, _remove, _single_reader


def drop_identity_transposes(graph: Graph) -> Graph:
    for node in [n for n in graph.nodes.values() if n.op == "transpose"]:
        if node.attrs["perm"] == sorted(node.attrs["perm"]):
            _remove(graph, node)
    return graph


def dense_as_conv(graph: Graph) -> Graph:
    if graph.layout != "NHWC":
        return graph
    drop_identity_transposes(graph)
    for linear in [n for n in graph.nodes.values() if n.op == "linear"]:
        flatten = _producer(graph, linear.inputs[0])
        unflatten = _single_reader(graph, linear)
        if flatten is None or unflatten is None or flatten.op != "reshape" or unflatten.op != "reshape":
            continue
        source = graph.tensor(flatten.inputs[0]).shape
        target = unflatten.attrs["shape"]
        same_pixels = all(s in (None, t) for s, t in zip(source[1:3], target[1:3]))
        if (len(source) != 4 or len(target) != 4 or not same_pixels
                or flatten.attrs["shape"][-1] != source[3] or _single_reader(graph, flatten) is not linear):
            continue
        kernel = graph.weights[linear.weights["kernel"]]
        graph.transform_weight(linear, "kernel", ("reshape", (1, 1, *kernel.out_shape)))
        linear.op = "conv2d"
        linear.attrs = {"strides": [1, 1], "dilations": [1, 1], "padding": "VALID", "groups": 1}
        linear.inputs = [flatten.inputs[0]]
        linear.outputs[0].shape = [source[0], *target[1:]]
        _remove(graph, unflatten)
        del graph.nodes[flatten.name]
    return graph
