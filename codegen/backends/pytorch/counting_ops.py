"""Renderers of the counting ops (a comparison with `torch.arange(size)` summed), the
data-dependent partitions (boolean masks; the `dynamic_stitch` helper), TF's
MaxPoolWithArgmax and its hue / saturation adjustments (generated helpers)."""

from __future__ import annotations

from codegen.backends.pytorch.registry import CAST_METHODS, Expr, renderer
from codegen.ir.graph import Graph, Node

COUNTING = "ops/counting.py.jinja"


@renderer("bincount")
def bincount(node: Node, graph: Graph) -> Expr:
    """(ids.unsqueeze(-1) == torch.arange(size)): one row of hits per id, summed over the
    ids (any: binary), weighted by the weights; in the output's dtype."""
    dtype = node.outputs[0].dtype
    flat = not node.attrs["rows"] and graph.tensor(node.inputs[0]).rank != 1
    weighted = node.attrs["weighted"]
    natural = "bool" if node.attrs["binary"] else graph.tensor(node.inputs[1]).dtype \
        if weighted and dtype in ("float32", "float64") else "int64"
    return Expr(COUNTING, {"kind": "bincount", "size": node.attrs["size"], "flat": flat,
                           "binary": node.attrs["binary"], "weighted": weighted,
                           "method": None if natural == dtype else CAST_METHODS[dtype]},
                hint="counts")


@renderer("dynamic_partition")
def dynamic_partition(node: Node, graph: Graph) -> Expr:
    return Expr(COUNTING, {"kind": "dynamic_partition", "count": node.attrs["num_partitions"]},
                hint="partition")


@renderer("dynamic_stitch")
def dynamic_stitch(node: Node, graph: Graph) -> Expr:
    """dynamic_stitch(indices, data): each row is the output's trailing axes."""
    return Expr(COUNTING, {"kind": "dynamic_stitch", "count": node.attrs["count"],
                           "row_rank": len(node.outputs[0].shape) - 1},
                hint="merged", helpers=("dynamic_stitch",))


@renderer("max_pool_with_argmax")
def max_pool_with_argmax(node: Node, graph: Graph) -> Expr:
    attrs = node.attrs
    if attrs["axis"] != 1:
        raise ValueError("max_pool_with_argmax of an image that is not NCHW")
    top, bottom, left, right = attrs["pad"]
    return Expr(COUNTING, {"kind": "max_pool_with_argmax",
                           "kernel_size": _pair(attrs["kernel_size"]),
                           "stride": _pair(attrs["strides"]),
                           "pad": (left, right, top, bottom) if any(attrs["pad"]) else None,
                           "include_batch": attrs["include_batch_in_index"],
                           "int32": node.outputs[1].dtype == "int32"},
                hint="pooled", helpers=("max_pool2d_with_argmax",))


def _pair(values: list[int]) -> int | tuple[int, int]:
    return values[0] if values[0] == values[1] else tuple(values)


@renderer("adjust_hue", "adjust_saturation")
def adjust_hsv(node: Node, graph: Graph) -> Expr:
    rank = len(node.outputs[0].shape)
    dim = node.attrs["axis"] - rank if node.attrs["axis"] == rank - 1 else node.attrs["axis"]
    return Expr(COUNTING, {"kind": node.op, "dim": dim}, hint="image",
                helpers=(node.op, "hue_chroma_value", "hsv_to_rgb"))
