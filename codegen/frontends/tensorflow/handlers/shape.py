"""Shape and reduction ops: Pad, PadV2, MirrorPad, Mean, Max, Squeeze, Reshape, ExpandDims,
ConcatV2, Transpose, StridedSlice."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler, slicing
from codegen.frontends.tensorflow.handlers.sizes import (
    concat_of_sizes,
    sized_reshape,
    slice_of_sizes,
)
from codegen.frontends.tensorflow.handlers.slicing import strided_slice_items


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
    ctx.emit("pad", [ctx.input(0)], attrs=attrs)


def reduction(ctx, ir_op: str) -> None:
    axes = _axes(ctx.const(1).reshape(-1), ctx.rank(0))
    ctx.emit(ir_op, [ctx.input(0)], attrs={"axes": axes, "keepdims": bool(ctx.attr("keep_dims"))})


@handler("Mean", ir="mean")
def mean(ctx) -> None:
    if not ctx.input_info(0).dtype.startswith(("float", "bfloat")):
        ctx.fail("Mean of integers (rounded towards zero by TF) is not supported")
    reduction(ctx, "mean")


@handler("Max", ir="reduce_max")
def reduce_max(ctx) -> None:
    reduction(ctx, "reduce_max")


@handler("Any", ir="reduce_any")
def reduce_any(ctx) -> None:
    """any(x, axes): Keras's Masking layer marks a step real if any feature differs."""
    reduction(ctx, "reduce_any")


@handler("Squeeze", ir="squeeze")
def squeeze(ctx) -> None:
    if ctx.rank(0) is None:
        ctx.fail("squeezes a tensor of unknown rank (export the model with known ranks)")
    shape = ctx.input_info(0).shape
    axes = list(ctx.attr("squeeze_dims") or [])
    axes = _axes(axes, len(shape)) if axes else [i for i, size in enumerate(shape) if size == 1]
    ctx.emit("squeeze", [ctx.input(0)], attrs={"axes": axes})


@handler("Reshape", ir="reshape", static=(1,))
def reshape(ctx) -> None:
    if ctx.is_size(0):
        return reshape_of_sizes(ctx)
    if ctx.is_const(1):
        shape = [int(size) for size in ctx.const(1).reshape(-1)]
    elif _one_unknown(ctx) is not None:  # sizes read from Shape ops: one of them unknown
        shape = _one_unknown(ctx)
    elif ctx.output_info(0).shape.count(None) > 1 and _keeps_leading(ctx):  # emitted there
        return
    elif _batch_and_rest(ctx) is not None:  # [N, -1, C] of a tensor of known sizes but N
        shape = _batch_and_rest(ctx)
    elif ctx.output_info(0).shape.count(None) > 1 and _sizes_read_at_run_time(ctx):
        return
    else:  # a shape computed at run time: the static shape, batch as -1
        shape = ctx.output_info(0).shape
        if shape.count(None) > 1 and _unknown_beyond_batch(ctx):  # sizes as values
            return sized_reshape(ctx)
        if shape.count(None) > 1:  # e.g. Tensordot's [N * H * W, C]
            shape = ctx.runtime_shape(ctx.op.inputs[1])
        shape = [-1 if size is None else size for size in shape]
    ctx.emit("reshape", [ctx.input(0)], attrs={"shape": shape})


def reshape_of_sizes(ctx) -> None:
    """A size reshaped to a scalar or a one-element vector (tf.repeat reshapes its repeats
    to []): the same size; [seq_len] to [] is seq_len, [] to [1] is (seq_len,)."""
    source, target = ctx.input_info(0).shape, ctx.output_info(0).shape
    if source == target:
        ctx.alias(ctx.op.outputs[0], ctx.input(0))
    elif source == [1] and target == []:
        ctx.emit("size_item", [ctx.input(0)], attrs={"index": 0})
    elif source == [] and target == [1]:
        ctx.emit("sizes", [ctx.input(0)], attrs={"parts": ["item"]})
    else:
        ctx.fail(f"a reshape of sizes from {source} to {target}")


def _unknown_beyond_batch(ctx) -> bool:
    """Whether some graph input has an unknown size other than its batch: then a shape
    computed at run time cannot be read at two batch sizes (`runtime_shape`)."""
    return ctx.sizes_unknown_beyond_batch()


def _keeps_leading(ctx) -> bool:
    """A reshape that keeps x's first k sizes (read from x's shape, some unknown) and
    flattens the rest ([N, T, -1]) or splits x's one last axis ([N, T, H, D]): emit
    `flatten` / `unflatten`, which need no size of the kept axes."""
    from codegen.frontends.tensorflow.handlers.dynamic import symbolic_dims

    dims, x = symbolic_dims(ctx, ctx.op.inputs[1]), ctx.op.inputs[0]
    shape = x.shape.as_list() if x.shape.rank is not None else None
    if dims is None or shape is None:
        return False
    kept = 0
    while kept < min(len(dims), len(shape)) and (
            dims[kept] == (x, kept) or (isinstance(dims[kept], int) and dims[kept] == shape[kept]
                                        and shape[kept] is not None)):
        kept += 1
    rest = dims[kept:]
    if kept == 0 or not all(isinstance(d, int) for d in rest) or not rest:
        return False
    if rest == [-1]:
        ctx.emit("flatten", [ctx.input(0)], attrs={"axis": kept})
        return True
    if kept == len(shape) - 1 and shape[-1] is not None and -1 not in rest \
            and int(np.prod(rest)) == shape[-1]:
        ctx.emit("unflatten", [ctx.input(0)], attrs={"axis": kept, "sizes": rest})
        return True
    return False


def _batch_and_rest(ctx) -> list[int] | None:
    """[-1, sizes...] for a shape operand [shape(x)[0], ..., -1, ...] of an x whose sizes
    are known but the batch (ViT's patches [N, H, W, C] -> [N, -1, C]): the -1 resolved."""
    from codegen.frontends.tensorflow.handlers.dynamic import symbolic_dims

    dims, x = symbolic_dims(ctx, ctx.op.inputs[1]), ctx.op.inputs[0]
    shape = x.shape.as_list() if x.shape.rank is not None else [None]
    if (dims is None or dims[0] != (x, 0) or None in shape[1:]
            or not all(isinstance(d, int) for d in dims[1:]) or dims[1:].count(-1) != 1):
        return None
    known = int(np.prod([d for d in dims[1:] if d != -1]))
    size = int(np.prod(shape[1:]))
    if known == 0 or size % known:
        return None
    return [-1] + [size // known if d == -1 else d for d in dims[1:]]
def _sizes_read_at_run_time(ctx) -> bool:
    """A reshape whose sizes are read from another tensor's shape (TF1 BERT's [B, T, H, D]
    with B, T = tf.shape(input_ids)): at two sample input sizes, the target is x's shape
    with 1s inserted (x.unsqueeze), or keeps x's unknown leading sizes and splits or merges
    its known trailing ones (unflatten / flatten)."""
    from codegen.frontends.tensorflow.handlers.dynamic import inserted_ones, sizes_at_run_time

    x = ctx.op.inputs[0]
    runs = sizes_at_run_time(ctx, ctx.op.inputs[1], x)
    if runs is None:
        return False
    axes = inserted_ones(runs)
    if axes:
        ctx.emit("unsqueeze", [ctx.input(0)], attrs={"axes": axes})
        return True
    static = x.shape.as_list()
    kept = 0
    while kept < len(static) and static[kept] is None:
        kept += 1
    if any(size is None for size in static[kept:]) or kept == len(static):
        return False
    rest = [target[kept:] for target, _ in runs]
    if any(target[:kept] != shape[:kept] or part != rest[0] for (target, shape), part
           in zip(runs, rest)) or int(np.prod(rest[0])) != int(np.prod(static[kept:])):
        return False
    if len(rest[0]) == 1 and len(static) - kept > 1:
        ctx.emit("flatten", [ctx.input(0)], attrs={"axis": kept})
        return True
    if len(static) - kept == 1 and len(rest[0]) > 1:
        ctx.emit("unflatten", [ctx.input(0)], attrs={"axis": kept, "sizes": rest[0]})
        return True
    return False


def _one_unknown(ctx) -> list[int] | None:
    """The shape operand read from Shape ops (`symbolic_dims`) with -1 for its one size
    known only at run time (Tensordot's [N * T, C]); None if there is not exactly one."""
    from codegen.frontends.tensorflow.handlers.dynamic import symbolic_dims

    dims = symbolic_dims(ctx, ctx.op.inputs[1])
    if dims is None or sum(not isinstance(d, int) for d in dims) != 1 or -1 in dims:
        return None  # (a -1 already there, e.g. [N, -1]: the unknown N stays for the old path)
    return [d if isinstance(d, int) else -1 for d in dims]


@handler("ConcatV2", ir="concat")
def concat(ctx) -> None:
    count = len(ctx.op.inputs) - 1
    if any(ctx.is_size(index) for index in range(count)):  # (*x.shape[:-1], 4, 8)
        return concat_of_sizes(ctx)
    axis = int(ctx.const(count)) % ctx.rank(0)
    ctx.emit("concat", [ctx.input(i) for i in range(count)], attrs={"axis": axis})


@handler("Transpose", ir="transpose")
def transpose(ctx) -> None:
    ctx.emit("transpose", [ctx.input(0)], attrs={"perm": [int(p) for p in ctx.const(1)]})


@handler("ExpandDims", ir="reshape", static=(1,))
def expand_dims(ctx) -> None:
    shape = ctx.output_info(0).shape
    if shape.count(None) > 1:  # sizes known only at run time: x.unsqueeze(axis)
        axis = int(ctx.const(1).reshape(-1)[0]) % len(shape)
        ctx.emit("unsqueeze", [ctx.input(0)], attrs={"axes": [axis]})
        return
    ctx.emit("reshape", [ctx.input(0)], attrs={"shape": [-1 if s is None else s for s in shape]})


@handler("StridedSlice", ir="index")
def strided_slice(ctx) -> None:
    """x[b:e:s, ...] with every mask, as plain Python indexing (handlers/slicing.py); x[:, 0]
    is a `select` and x[:, None, :] (new axes only) an `unsqueeze`; shape[1] of a shape
    vector (sizes.py)."""
    if ctx.is_size(0):
        return slice_of_sizes(ctx)
    items, flips = strided_slice_items(ctx)
    full = [None, None, 1]
    new = [i for i, item in enumerate(items) if item is None]
    picked = [i for i, item in enumerate(items) if isinstance(item, int)]
    if not flips and new and not picked and all(item in (None, full) for item in items):
        ctx.emit("unsqueeze", [ctx.input(0)], attrs={"axes": new})
        return
    if not flips and not new and len(picked) == 1 and all(
            item == full for i, item in enumerate(items) if i != picked[0]):
        ctx.emit("select", [ctx.input(0)], attrs={"axis": picked[0], "index": items[picked[0]]})
        return
    slicing.strided_slice(ctx)
