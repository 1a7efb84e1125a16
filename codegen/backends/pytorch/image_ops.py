"""Renderers of the image ops (resize, pixel shuffles) and of the math ops that take
attributes (clamp, cumsum); see ops.py for Layer/Expr."""

from __future__ import annotations

from codegen.backends.pytorch.registry import Expr, renderer
from codegen.ir.graph import Graph, Node

IMAGE = "ops/image.py.jinja"
MATH = "ops/math.py.jinja"
TORCH_DTYPES = {"int32": "torch.int32"}  # torch.cumsum widens int32 to int64; TF does not


def _number(values: list[int]) -> int | tuple[int, int]:
    return values[0] if values[0] == values[1] else tuple(values)


@renderer("resize")
def resize(node: Node, graph: Graph) -> Expr:
    """F.interpolate to a fixed size, by integer factors, or to another tensor's size."""
    attrs = {"kind": "resize", "mode": node.attrs["mode"]}
    if node.attrs["size"] is not None:
        attrs["size"] = tuple(node.attrs["size"])
    elif node.attrs["scale"] is not None:
        attrs["scale"] = _number(node.attrs["scale"])
    if node.attrs["mode"] in ("bilinear", "bicubic"):
        attrs["align_corners"] = node.attrs["align_corners"]
    if node.attrs["antialias"]:
        attrs["antialias"] = True
    if node.attrs.get("tf_sampling"):  # TF's own positions and weights (a helper)
        if "scale" in attrs:
            attrs["scale"] = tuple(node.attrs["scale"])
        attrs.update(kind="tf_resize", align_corners=node.attrs["align_corners"],
                     half_pixel_centers=node.attrs["half_pixel_centers"])
        return Expr(IMAGE, attrs, hint="resized", helpers=("tf_resize",))
    return Expr(IMAGE, attrs, hint="resized")


@renderer("depth_to_space", "space_to_depth")
def pixel_shuffle(node: Node, graph: Graph) -> Expr:
    """TF orders the channels block-major (DCR), pixel_shuffle channel-major (CRD): a view
    puts them in its order, unless the layout pass permuted the conv before (`crd`)."""
    block = node.attrs["block_size"]
    attrs = {"kind": node.op, "block_size": block, "blocks": block * block,
             "crd": node.attrs.get("crd", False)}
    return Expr(IMAGE, attrs, hint=node.op)


@renderer("clamp")
def clamp(node: Node, graph: Graph) -> Expr:
    attrs = {"kind": "clamp", **{key: float(node.attrs[key]) for key in ("min", "max")
                                 if key in node.attrs}}
    return Expr(MATH, attrs, hint="x")


@renderer("cumsum")
def cumsum(node: Node, graph: Graph) -> Expr:
    """x.cumsum(dim); reverse: flipped before and after; exclusive: x shifted by one along
    dim first (F.pad with a negative pad at the other end drops the last entry)."""
    rank, axis = len(node.outputs[0].shape), node.attrs["axis"]
    attrs = {"kind": "cumsum", "dim": axis, "reverse": node.attrs["reverse"]}
    if node.attrs["exclusive"]:
        shift = (-1, 1) if node.attrs["reverse"] else (1, -1)
        attrs["shift"] = (0, 0) * (rank - 1 - axis) + shift
    dtype = node.outputs[0].dtype
    if dtype in TORCH_DTYPES:
        attrs["dtype"] = TORCH_DTYPES[dtype]
    return Expr(MATH, attrs, hint="x")
