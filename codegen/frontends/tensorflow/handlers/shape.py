"""Shape and reduction ops: Pad, PadV2, MirrorPad, Mean, Max, Squeeze, Reshape, ExpandDims,
ConcatV2, Transpose, StridedSlice."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler


def _axes(values, rank: int) -> list[int]:
    return sorted(int(axis) % rank for axis in values)


@handler("Pad", "PadV2", "MirrorPad", ir="pad")
def pad(ctx) -> None:
    pads = [[int(a), int(b)] for a, b in ctx.const(1).tolist()]
    attrs = {"pads": pads, "mode": "constant", "value": 0.0}
    if ctx.op.type == "PadV2":
        attrs["value"] = float(ctx.const(2))
    if ctx.op.type == "MirrorPad":
        attrs = {"pads": pads, "mode": ctx.attr("mode").lower()}
        if attrs["mode"] == "symmetric" and max(max(pair) for pair in pads) > 1:
            ctx.fail("MirrorPad SYMMETRIC wider than one pixel has no PyTorch equivalent "
                     "(one pixel is edge replication, and is converted)")
    ctx.emit("pad", [ctx.input(0)], attrs=attrs)


def reduction(ctx, ir_op: str) -> None:
    axes = _axes(ctx.const(1).reshape(-1), ctx.rank(0))
    ctx.emit(ir_op, [ctx.input(0)], attrs={"axes": axes, "keepdims": bool(ctx.attr("keep_dims"))})


@handler("Mean", ir="mean")
def mean(ctx) -> None:
    reduction(ctx, "mean")


@handler("Max", ir="reduce_max")
def reduce_max(ctx) -> None:
    reduction(ctx, "reduce_max")


@handler("Squeeze", ir="squeeze")
def squeeze(ctx) -> None:
    shape = ctx.input_info(0).shape
    axes = list(ctx.attr("squeeze_dims") or [])
    axes = _axes(axes, len(shape)) if axes else [i for i, size in enumerate(shape) if size == 1]
    ctx.emit("squeeze", [ctx.input(0)], attrs={"axes": axes})


@handler("Reshape", ir="reshape", static=(1,))
def reshape(ctx) -> None:
    if ctx.is_const(1):
        shape = [int(size) for size in ctx.const(1).reshape(-1)]
    else:  # a shape computed at run time: the static shape, batch as -1
        shape = ctx.output_info(0).shape
        if shape.count(None) > 1:  # e.g. Tensordot's [N * H * W, C]
            shape = ctx.runtime_shape(ctx.op.inputs[1])
        shape = [-1 if size is None else size for size in shape]
    ctx.emit("reshape", [ctx.input(0)], attrs={"shape": shape})


@handler("ConcatV2", ir="concat")
def concat(ctx) -> None:
    count = len(ctx.op.inputs) - 1
    axis = int(ctx.const(count)) % ctx.rank(0)
    ctx.emit("concat", [ctx.input(i) for i in range(count)], attrs={"axis": axis})


@handler("Transpose", ir="transpose")
def transpose(ctx) -> None:
    ctx.emit("transpose", [ctx.input(0)], attrs={"perm": [int(p) for p in ctx.const(1)]})


@handler("ExpandDims", ir="reshape", static=(1,))
def expand_dims(ctx) -> None:
    shape = ctx.output_info(0).shape
    if shape.count(None) > 1:
        ctx.fail("expand_dims of a tensor with more than one unknown dimension")
    ctx.emit("reshape", [ctx.input(0)], attrs={"shape": [-1 if s is None else s for s in shape]})


@handler("StridedSlice", ir="slice")
def strided_slice(ctx) -> None:
    """x[b:e:s, ...] with plain begin/end masks (what Cropping2D and friends produce)."""
    for mask in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
        if ctx.attr(mask):
            ctx.fail(f"strided slice with {mask} is not supported")
    rank = ctx.rank(0)
    begin, end, strides = (ctx.const(i).reshape(-1).tolist() for i in (1, 2, 3))
    begin_mask, end_mask = ctx.attr("begin_mask"), ctx.attr("end_mask")
    axes = []
    for axis in range(rank):
        if axis >= len(begin):
            axes.append([None, None, 1])
            continue
        start = None if begin_mask & (1 << axis) else int(begin[axis])
        stop = None if end_mask & (1 << axis) else int(end[axis])
        axes.append([start, stop, int(strides[axis])])
    if any(step <= 0 for _, _, step in axes):
        ctx.fail("strided slice with a negative or zero stride is not supported")
    ctx.emit("slice", [ctx.input(0)], attrs={"axes": axes})
