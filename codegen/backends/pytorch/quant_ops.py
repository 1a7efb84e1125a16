"""Renderers of fake quantization and the detection ops: calls of generated helpers
(`fake_quant`, `quantize_dequantize`, `crop_and_resize`, `non_max_suppression`,
`combined_non_max_suppression`) that
compute TF's numbers, and SpaceToBatchND / BatchToSpaceND as reshapes."""

from __future__ import annotations

from codegen.backends.pytorch.registry import Expr, renderer
from codegen.ir.graph import Graph, Node

QUANT = "ops/quant.py.jinja"
DETECTION = "ops/detection.py.jinja"


@renderer("fake_quant", "fake_quant_per_channel")
def fake_quant(node: Node, graph: Graph) -> Expr:
    """fake_quant(x, min, max[, num_bits=][, narrow_range=True]); min/max numbers or inputs."""
    attrs = {"kind": "fake_quant", "bounds": "min" in node.attrs}
    if "min" in node.attrs:
        attrs.update(min=node.attrs["min"], max=node.attrs["max"])
    if node.attrs["num_bits"] != 8:
        attrs["num_bits"] = node.attrs["num_bits"]
    if node.attrs["narrow_range"]:
        attrs["narrow_range"] = True
    return Expr(QUANT, attrs, hint="quantized", helpers=("fake_quant",))


@renderer("quantize_dequantize", "quantize_dequantize_per_channel")
def quantize_dequantize(node: Node, graph: Graph) -> Expr:
    """quantize_dequantize(x[, min, max], ...): arguments only where not the defaults."""
    a = node.attrs
    attrs = {"kind": "quantize_dequantize", "bounds": "min" in a}
    if "min" in a:
        attrs.update(min=a["min"], max=a["max"])
    if a["num_bits"] != 8:
        attrs["num_bits"] = a["num_bits"]
    if not a["signed"]:
        attrs["signed"] = False
    if a["narrow_range"]:
        attrs["narrow_range"] = True
    if not a["half_to_even"]:
        attrs["half_to_even"] = False
    if "axis" in a:
        attrs["axis"] = a["axis"]
    if a.get("clip_gradient"):
        attrs["clip_gradient"] = True
    return Expr(QUANT, attrs, hint="quantized", helpers=("quantize_dequantize",))


@renderer("crop_and_resize")
def crop_and_resize(node: Node, graph: Graph) -> Expr:
    a = node.attrs
    attrs = {"kind": "crop_and_resize", "crop_size": tuple(a["crop_size"])}
    if a["method"] != "bilinear":
        attrs["method"] = a["method"]
    if a["extrapolation_value"] != 0.0:
        attrs["extrapolation_value"] = a["extrapolation_value"]
    return Expr(DETECTION, attrs, hint="crops", helpers=("crop_and_resize",))


@renderer("non_max_suppression")
def non_max_suppression(node: Node, graph: Graph) -> Expr:
    a = node.attrs
    attrs = {"kind": "non_max_suppression", "max_output_size": a["max_output_size"],
             "iou_threshold": a["iou_threshold"], "score_threshold": a["score_threshold"],
             "outputs": a["outputs"]}
    if a["pad"]:
        attrs["pad"] = True
    return Expr(DETECTION, attrs, hint="selected", helpers=("non_max_suppression",))


@renderer("combined_non_max_suppression")
def combined_non_max_suppression(node: Node, graph: Graph) -> Expr:
    a = node.attrs
    attrs = {"kind": "combined_non_max_suppression", **{key: a[key] for key in (
        "max_output_size_per_class", "max_total_size", "iou_threshold", "score_threshold")}}
    if a["pad_per_class"]:
        attrs["pad_per_class"] = True
    if not a["clip_boxes"]:
        attrs["clip_boxes"] = False
    return Expr(DETECTION, attrs, hint="detections",
                helpers=("non_max_suppression", "combined_non_max_suppression"))


@renderer("space_to_batch")
def space_to_batch(node: Node, graph: Graph) -> Expr:
    """F.pad, then each spatial axis split into (size / block, block), the block offsets
    moved in front of the batch and merged with it."""
    block, pads = node.attrs["block_shape"], node.attrs["paddings"]
    rank, spatial = len(node.outputs[0].shape), len(block)
    pad = tuple(value for pair in reversed(pads) for value in pair)
    pad = (0, 0) * (rank - 1 - spatial) + pad
    splits = [(1 + 2 * i, block[i]) for i in range(spatial)]
    perm = ([2 + 2 * i for i in range(spatial)] + [0] + [1 + 2 * i for i in range(spatial)]
            + list(range(1 + 2 * spatial, rank + spatial)))
    chain = "".join(f".unflatten({axis}, (-1, {size}))" for axis, size in splits)
    chain += f".permute{tuple(perm)}.flatten(0, {spatial})"
    attrs = {"kind": "space_to_batch", "pad": pad if any(pad) else None, "chain": chain}
    return Expr(DETECTION, attrs, hint="space_to_batch")


@renderer("batch_to_space")
def batch_to_space(node: Node, graph: Graph) -> Expr:
    """The batch split into (blocks..., batch), each block offset moved behind its spatial
    axis and merged with it, then the crops sliced off."""
    block, crops = node.attrs["block_shape"], node.attrs["crops"]
    rank, spatial = len(node.outputs[0].shape), len(block)
    perm = ([spatial] + [axis for i in range(spatial) for axis in (spatial + 1 + i, i)]
            + list(range(2 * spatial + 1, rank + spatial)))
    chain = f".unflatten(0, {(*block, -1)}).permute{tuple(perm)}"
    chain += "".join(f".flatten({1 + i}, {2 + i})" for i in range(spatial))
    if any(value for pair in crops for value in pair):
        slices = [f"{start or ''}:{-end if end else ''}" for start, end in crops]
        chain += "[" + ", ".join([":", *slices]) + "]"
    return Expr(DETECTION, {"kind": "batch_to_space", "chain": chain}, hint="batch_to_space")
