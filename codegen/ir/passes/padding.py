"""TF 'SAME' / 'VALID' padding -> explicit [[top, bottom], [left, right]] pads (one pair per
spatial axis: one for a sequence, three for a volume).

TF 'SAME' pads `total = max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)` per spatial
axis, the odd pixel at the end. With a static size the pads are exact numbers. With an
unknown size they are still static when the stride is 1 (total = (k - 1) * d); otherwise
'SAME' stays and the backend pads at run time. Runs on NCHW graphs.
"""

from __future__ import annotations

from codegen.ir.graph import Graph

CONVS = ("conv1d", "conv2d", "conv3d")
WINDOWED = (*CONVS, "max_pool1d", "avg_pool1d", "max_pool2d", "avg_pool2d", "max_pool3d",
            "avg_pool3d")


def same_pads(size: int | None, kernel: int, stride: int, dilation: int) -> list[int] | None:
    """[before, after] of TF 'SAME' padding, or None when it depends on the size."""
    extent = (kernel - 1) * dilation + 1
    if size is None:
        if stride != 1:
            return None
        total = extent - 1
    else:
        total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return [total // 2, total - total // 2]


def resolve_padding(graph: Graph) -> Graph:
    for node in graph.nodes.values():
        if node.op not in WINDOWED or not isinstance(node.attrs["padding"], str):
            continue
        if node.attrs["padding"] == "VALID":
            node.attrs["padding"] = [[0, 0] for _ in node.attrs["strides"]]
            continue
        if node.op in CONVS:
            kernel = graph.weights[node.weights["kernel"]].out_shape[2:]
            dilations = node.attrs["dilations"]
        else:
            kernel, dilations = node.attrs["kernel_size"], [1] * len(node.attrs["strides"])
        sizes = graph.tensor(node.inputs[0]).shape[2:]
        pads = [
            same_pads(size, k, s, d)
            for size, k, s, d in zip(sizes, kernel, node.attrs["strides"], dilations)
        ]
        if None not in pads:
            node.attrs["padding"] = pads
    return graph
