"""Shapes read at run time, as sequence models use them: Fill (ones_like), Slice (a
position table cut to the sequence length), BroadcastTo (to another tensor's shape), and
the mask plumbing (Less, LogicalAnd, SelectV2). Shape vectors computed from `Shape` ops
are read at conversion time (`symbolic_dims`), never translated into shape arithmetic."""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.frontends.tensorflow.context import tensor_info
from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.sizes import sized_broadcast, sized_fill, sized_tile
from codegen.frontends.tensorflow.rewrites.causal_mask import causal_mask, sliding_window
from codegen.ir.graph import TensorInfo


def symbolic_dims(ctx, tensor) -> list[Any] | None:
    """A shape vector (or one size) computed from `Shape` ops and constants, element by
    element: an int, (tensor, axis) for a size known only at run time, or ("prod", dims)
    for a product of sizes; None if it is computed some other way."""
    op = tensor.op
    if ctx.kind_of(tensor) == "constant":
        return [int(v) for v in ctx.value_of(tensor).reshape(-1)]
    if op.type in ("Identity", "Cast"):
        return symbolic_dims(ctx, op.inputs[0])
    if op.type == "Shape":
        source = op.inputs[0]
        if source.shape.rank is None:
            return None
        return [size if size is not None else (source, axis)
                for axis, size in enumerate(source.shape.as_list())]
    if op.type == "Pack":
        parts = [symbolic_dims(ctx, t) for t in op.inputs]
        if any(part is None or len(part) != 1 for part in parts):
            return None
        return [part[0] for part in parts]
    if op.type == "ConcatV2" and ctx.kind_of(op.inputs[-1]) == "constant":
        parts = [symbolic_dims(ctx, t) for t in op.inputs[:-1]]
        return None if any(p is None for p in parts) else [d for p in parts for d in p]
    if op.type == "GatherV2" and ctx.kind_of(op.inputs[1]) == "constant":
        base = symbolic_dims(ctx, op.inputs[0])
        indices = ctx.value_of(op.inputs[1]).reshape(-1).tolist()
        if base is None or not all(-len(base) <= i < len(base) for i in indices):
            return None
        return [base[i] for i in indices]
    if op.type == "Prod" and ctx.kind_of(op.inputs[1]) == "constant":
        base = symbolic_dims(ctx, op.inputs[0])
        if base is None or ctx.value_of(op.inputs[1]).reshape(-1).tolist() not in ([0], [-1]):
            return None
        if all(isinstance(d, int) for d in base):
            return [int(np.prod(base, dtype=np.int64))]
        return [("prod", tuple(base))]
    if op.type == "StridedSlice" and op.get_attr("shrink_axis_mask") == 1:
        base = symbolic_dims(ctx, op.inputs[0])
        if base is None or ctx.kind_of(op.inputs[1]) != "constant":
            return None
        index = int(ctx.value_of(op.inputs[1]).reshape(-1)[0])
        return [base[index]] if -len(base) <= index < len(base) else None
    return None


def _same_as(ctx, dims, tensor) -> bool:
    """Whether `dims` is exactly the shape of `tensor` (its unknown sizes read from it)."""
    shape = tensor.shape.as_list() if tensor.shape.rank is not None else None
    if dims is None or shape is None or len(dims) != len(shape):
        return False
    for axis, (dim, size) in enumerate(zip(dims, shape)):
        if isinstance(dim, tuple):
            if dim[0] is not tensor:
                return False
            if dim[1] != axis:
                return False
        elif dim != size:
            return False
    return True


def sizes_at_run_time(ctx, shape, like) -> list[tuple[list[int], list[int]]] | None:
    """(the shape vector `shape`, the shape of `like`) at two sample input sizes, when
    `shape` is computed from Shape ops (`symbolic_dims`) with some size unknown; else None."""
    dims = symbolic_dims(ctx, shape)
    if dims is None or all(isinstance(d, int) for d in dims) or like.shape.rank is None:
        return None
    runs = ctx.sample_run([shape], [like])
    if runs is None:
        return None
    return [(run[0].reshape(-1).tolist(), run[1].reshape(-1).tolist()) for run in runs]


def inserted_ones(runs) -> list[int] | None:
    """The axes of the 1s that make the target out of like's shape, the same in every run
    (`sizes_at_run_time`), else None: the target is like.unsqueeze(axes)."""
    found = []
    for target, shape in runs:
        axes, index = [], 0
        for axis, size in enumerate(target):
            if index < len(shape) and size == shape[index]:
                index += 1
            elif size == 1:
                axes.append(axis)
            else:
                return None
        if index != len(shape):
            return None
        found.append(axes)
    return found[0] if all(axes == found[0] for axes in found) else None


@handler("Fill", ir="full_like", static=(0,))
def fill(ctx) -> None:
    """tf.ones_like / zeros_like of a computed tensor: Fill(Shape(t), value); tf.ones([B,
    T, 1]) with B, T read from t's shape: t.unsqueeze(2), then full_like."""
    shape_op = ctx.op.inputs[0].op
    if not ctx.is_const(1):
        ctx.fail("only Fill(Shape(t), constant) (ones_like, zeros_like) is supported")
    like = ctx.converted(shape_op.inputs[0]) if shape_op.type == "Shape" \
        else _sized_like(ctx)
    if like is None:  # a shape computed at run time otherwise: torch.full(shape, value)
        return sized_fill(ctx)
    value = ctx.const(1).reshape(())[()]
    dtype = ctx.output_info(0).dtype
    value = bool(value) if dtype == "bool" else float(value)
    ctx.emit("full_like", [like], attrs={"value": value, "dtype": dtype})


def _sized_like(ctx) -> str | None:
    """A tensor of the Fill's shape: t.unsqueeze(axes) when the shape is t's sizes with
    1s inserted (t read from the shape's Shape ops, checked at two sample sizes)."""
    dims = symbolic_dims(ctx, ctx.op.inputs[0])
    like = next((d[0] for d in dims or () if isinstance(d, tuple)), None)
    runs = sizes_at_run_time(ctx, ctx.op.inputs[0], like) if like is not None else None
    axes = inserted_ones(runs) if runs else None
    if axes is None:
        return None
    try:
        ref = ctx.ref_of(like)
    except KeyError:  # t is read only for its shape: not converted
        return None
    if not axes:
        return ref
    shape = ctx.output_info(0).shape
    return ctx.emit("unsqueeze", [ref], attrs={"axes": axes}, suffix="like",
                    outputs=[TensorInfo(shape, like.dtype.base_dtype.name)])


@handler("Slice", ir="position_embedding", static=(1, 2))
def slice_(ctx) -> None:
    """table[:T] of a weight, with T a size of another tensor read at run time (Keras
    position embeddings); a slice of constant bounds is a plain `slice`."""
    if not ctx.is_const(1):
        ctx.fail("slice with run-time begin")
    begin = [int(b) for b in ctx.const(1).reshape(-1)]
    size = symbolic_dims(ctx, ctx.op.inputs[2])
    shape = ctx.input_info(0).shape
    if size is None:
        ctx.fail("slice whose size is computed other than from shapes")
    if all(isinstance(s, int) for s in size):
        axes = [[b, None if s == -1 else b + s, 1] for b, s in zip(begin, size)]
        ctx.emit("slice", [ctx.input(0)], attrs={"axes": axes})
        return
    dynamic = [(axis, s) for axis, s in enumerate(size) if isinstance(s, tuple)]
    static_ok = all(s in (-1, shape[axis]) for axis, s in enumerate(size) if isinstance(s, int))
    if (len(shape) != 2 or ctx.kind(0) not in ("weight", "constant") or any(begin)
            or len(dynamic) != 1 or dynamic[0][0] != 0 or not static_ok):
        return slice_to(ctx, begin, size)
    source, axis = dynamic[0][1]
    ctx.emit("position_embedding", [ctx.ref_of(source)], attrs={"axis": axis},
             weights={"table": ctx.weight(0)})


def slice_to(ctx, begin: list[int], size: list) -> None:
    """x[:query_len, :key_len]: a slice whose lengths are sizes read at run time (Qwen3's
    sliding-window mask cut to the attention mask's size)."""
    if any(b < 0 for b in begin):
        ctx.fail("slice with a negative begin")
    lengths, inputs = [], [ctx.input(0)]
    for axis, length in enumerate(size):
        if isinstance(length, int):
            lengths.append(length)
            continue
        tensor, source_axis = length
        shape = ctx.emit("shape", [ctx.ref_of(tensor)], suffix=f"shape{axis}",
                         outputs=[TensorInfo([tensor.shape.rank], "int32", size=True)])
        inputs.append(ctx.emit("size_item", [shape], attrs={"index": source_axis},
                               suffix=f"length{axis}", outputs=[TensorInfo([], "int32", size=True)]))
        lengths.append(None)
    ctx.emit("slice_to", inputs, attrs={"begin": begin, "lengths": lengths})


@handler("BroadcastTo", ir="expand_as", static=(1,))
def broadcast_to(ctx) -> None:
    """broadcast_to(x, shape(t)): x.expand_as(t); to a constant shape: x.expand(2, 3, 4)."""
    if ctx.is_const(1):
        from codegen.frontends.tensorflow.handlers.slicing import broadcast_to_constant

        return broadcast_to_constant(ctx)
    dims = symbolic_dims(ctx, ctx.op.inputs[1])
    like = next((d[0] for d in dims or () if isinstance(d, tuple)), None)
    if like is None or not _same_as(ctx, dims, like):
        return sized_broadcast(ctx)  # x.expand(shape), a shape computed at run time
    ctx.emit("expand_as", [ctx.input(0), ctx.ref_of(like)])


KEEP_BATCH = ("BiasAdd", "Conv2D")  # ops whose output has the batch size of their input 0


@handler("Tile", ir="expand", static=(1,))
def tile(ctx) -> None:
    """tile(x, [shape(t)[a], 1, ...]) of an x of size 1 on the tiled axes (ViT's class token
    repeated over the batch): x.expand(t.shape[a], -1, ...), no copy."""
    dims = symbolic_dims(ctx, ctx.op.inputs[1])
    shape = ctx.input_info(0).shape
    if dims is None or len(dims) != len(shape):
        return sized_tile(ctx)  # x.repeat(...) by sizes computed at run time
    sizes = [d for d in dims if isinstance(d, tuple)]
    like = sizes[0][0] if sizes else None
    if (like is None or any(d[0] is not like for d in sizes)
            or any(d != 1 for d in dims if not isinstance(d, tuple))
            or any(shape[axis] != 1 for axis, d in enumerate(dims) if isinstance(d, tuple))):
        return sized_tile(ctx)
    axes = [d[1] if isinstance(d, tuple) else None for d in dims]
    while axes == [0] + [None] * (len(axes) - 1) and like.op.type in KEEP_BATCH:
        like = like.op.inputs[0]  # the batch size read from the input of the patch conv
    ctx.emit("expand", [ctx.input(0), ctx.ref_of(like)], attrs={"axes": axes})


@handler("Less", ir="less")
def less(ctx) -> None:
    ctx.emit("less", [ctx.input(0), ctx.input(1)])


@handler("LogicalAnd", ir="logical_and")
def logical_and(ctx) -> None:
    ctx.emit("logical_and", [ctx.input(0), ctx.input(1)])


def _select_reads(op) -> list:
    """A causal mask (see rewrites/causal_mask.py) reads the sequence and the padding only."""
    causal = causal_mask(op.inputs[0])
    if causal is None:
        return list(op.inputs)
    return [t for t in causal if t is not None] + list(op.inputs[1:])


@handler("SelectV2", ir="where", reads=_select_reads)
def select(ctx) -> None:
    causal = causal_mask(ctx.op.inputs[0]) is not None
    condition = emit_causal_mask(ctx, ctx.op.inputs[0]) if causal else ctx.input(0)
    ctx.emit("where", [condition, ctx.input(1), ctx.input(2)])


def emit_causal_mask(ctx, condition, info=None, grouped: bool = False) -> str:
    """The causal mask `condition` (see rewrites/causal_mask.py) as one IR `causal_mask`
    node in this op's scope ([N, 1, T, S]: `info` when the condition has another rank)."""
    x, padding = causal_mask(condition, grouped)
    inputs = [ctx.ref_of(x)] + ([] if padding is None else [ctx.ref_of(padding)])
    window = sliding_window(condition, grouped)
    return ctx.emit("causal_mask", inputs, suffix="causal_mask",
                    attrs={} if window is None else {"window": window},
                    outputs=[info or tensor_info(condition)])
