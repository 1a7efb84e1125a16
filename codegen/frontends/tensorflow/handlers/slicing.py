"""Slicing and shape-moving ops on tensors of any dtype: Unpack (`x.unbind(dim)`), Split and
SplitV (`x.chunk` / `torch.split`), Roll (`torch.roll`), StridedSlice with every mask (plain
Python indexing, `x[..., None, 1:-1:2]`) and BroadcastTo a constant shape (`x.expand`).

StridedSlice and BroadcastTo are registered where they were (shape.py, dynamic.py), which
call the functions here for the forms they do not take themselves."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.ir.graph import TensorInfo


def _axis(ctx, value, rank: int) -> int:
    axis = int(value)
    if not -rank <= axis < rank:
        ctx.fail(f"axis {axis} is out of range for a rank-{rank} tensor")
    return axis % rank


def _outputs(ctx) -> list[TensorInfo]:
    return [ctx.output_info(i) for i in range(len(ctx.op.outputs))]


@handler("Unpack", ir="unbind")
def unpack(ctx) -> None:
    """tf.unstack(x, axis): x.unbind(axis), one output per entry along the axis."""
    if ctx.rank(0) is None:
        ctx.fail("unstacks a tensor of unknown rank (export the model with known ranks)")
    axis = _axis(ctx, ctx.attr("axis"), ctx.rank(0))
    if len(ctx.op.outputs) == 1:  # one entry: x.squeeze(axis)
        ctx.emit("squeeze", [ctx.input(0)], attrs={"axes": [axis]})
        return
    ctx.emit("unbind", [ctx.input(0)], attrs={"axis": axis}, outputs=_outputs(ctx))


@handler("Split", ir="split", static=(0,))
def split(ctx) -> None:
    """tf.split(x, n, axis): x.chunk(n, dim) (TF requires equal parts)."""
    rank = ctx.rank(1)
    if rank is None:
        ctx.fail("splits a tensor of unknown rank (export the model with known ranks)")
    axis = _axis(ctx, ctx.const(0).reshape(-1)[0], rank)
    _emit_split(ctx, ctx.input(1), axis, None)


@handler("SplitV", ir="split", static=(1, 2))
def split_v(ctx) -> None:
    """tf.split(x, [sizes], axis): torch.split(x, sizes, dim), a -1 size resolved."""
    rank = ctx.rank(0)
    if rank is None:
        ctx.fail("splits a tensor of unknown rank (export the model with known ranks)")
    axis = _axis(ctx, ctx.const(2).reshape(-1)[0], rank)
    sizes = [int(size) for size in ctx.const(1).reshape(-1)]
    if -1 in sizes:
        total = ctx.input_info(0).shape[axis]
        if total is None:
            ctx.fail("split sizes with a -1 of an axis whose size is known only at run time")
        sizes[sizes.index(-1)] = total - sum(size for size in sizes if size != -1)
    _emit_split(ctx, ctx.input(0), axis, sizes)


def _emit_split(ctx, x: str, axis: int, sizes: list[int] | None) -> None:
    outputs = _outputs(ctx)
    if len(outputs) == 1:  # one part: the tensor itself
        ctx.emit("identity", [x])
        return
    attrs = {"axis": axis, "chunks": len(outputs)}
    if sizes is not None and len(set(sizes)) > 1:
        attrs["sizes"] = sizes
    ctx.emit("split", [x], attrs=attrs, outputs=outputs)


@handler("Roll", ir="roll", static=(1, 2))
def roll(ctx) -> None:
    """tf.roll(x, shift, axis) of constant shifts: torch.roll(x, shifts, dims)."""
    rank = ctx.rank(0)
    if not (ctx.is_const(1) and ctx.is_const(2)):
        ctx.fail("roll by a shift or axis computed at run time")
    shifts = [int(s) for s in ctx.const(1).reshape(-1)]
    axes = [_axis(ctx, a, rank) for a in ctx.const(2).reshape(-1)]
    ctx.emit("roll", [ctx.input(0)], attrs={"shifts": shifts, "axes": axes})


def broadcast_to_constant(ctx) -> None:
    """tf.broadcast_to(x, [2, 3, 4]): x.expand(2, 3, 4)."""
    shape = [int(size) for size in ctx.const(1).reshape(-1)]
    ctx.emit("broadcast_to", [ctx.input(0)], attrs={"shape": shape})


def strided_slice_items(ctx) -> tuple[list, list[int]] | None:
    """The index of a StridedSlice as IR `index` items, one per input axis plus the new
    ones ([start, stop, step] | an integer, the axis dropped | None, a new axis), and the
    input axes to flip first (a negative stride is a flip, then a positive stride)."""
    rank = ctx.rank(0)
    if rank is None:
        ctx.fail("strided slice of a tensor of unknown rank (export the model with known ranks)")
    begin, end, strides = (ctx.const(i).reshape(-1).tolist() for i in (1, 2, 3))
    masks = {name: ctx.attr(f"{name}_mask") or 0
             for name in ("begin", "end", "ellipsis", "new_axis", "shrink_axis")}
    specs = len(begin)
    if not masks["ellipsis"]:  # an implicit ellipsis at the end
        masks["ellipsis"], specs = 1 << specs, specs + 1
    consumed = sum(1 for i in range(specs) if not (masks["ellipsis"] | masks["new_axis"]) & (1 << i))
    shape, items, flips, axis = ctx.input_info(0).shape, [], [], 0
    for i in range(specs):
        bit = 1 << i
        if masks["ellipsis"] & bit:
            for _ in range(rank - consumed):
                items.append([None, None, 1])
                axis += 1
        elif masks["new_axis"] & bit:
            items.append(None)
        elif masks["shrink_axis"] & bit:
            items.append(int(begin[i]))
            axis += 1
        else:
            start = None if masks["begin"] & bit else int(begin[i])
            stop = None if masks["end"] & bit else int(end[i])
            step = int(strides[i])
            if step == 0:
                ctx.fail("strided slice with a zero stride")
            if step < 0:
                flips.append(axis)
                start, stop, step = _flipped(ctx, start, stop, step, shape[axis])
            items.append([start, stop, step])
            axis += 1
    return items, flips


def _flipped(ctx, start, stop, step: int, size: int | None) -> list:
    """x[start:stop:step] with step < 0 as x.flip(axis)[a:b:-step]."""
    if size is None:
        if start is None and stop is None:
            return [None, None, -step]
        ctx.fail("strided slice with a negative stride and bounds of an axis whose size is "
                 "known only at run time")
    picked = range(*slice(start, stop, step).indices(size))
    if not picked:
        return [0, 0, 1]
    first, count = size - 1 - picked[0], len(picked)
    last = first + (count - 1) * -step + 1
    return [first or None, None if last >= size else last, -step]


def strided_slice(ctx) -> None:
    """Any StridedSlice of an activation: flip the reversed axes, then one `slice` (plain
    slices) or `index` (with integers and new axes)."""
    items, flips = strided_slice_items(ctx)
    x = ctx.input(0)
    if flips:
        info = ctx.input_info(0)
        x = ctx.emit("flip", [x], attrs={"axes": flips}, suffix="flip",
                     outputs=[TensorInfo(list(info.shape), info.dtype)])
    if all(isinstance(item, list) for item in items):
        ctx.emit("slice", [x], attrs={"axes": items})
        return
    ctx.emit("index", [x], attrs={"items": items})
