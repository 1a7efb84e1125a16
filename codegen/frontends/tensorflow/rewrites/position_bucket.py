"""T5's relative-position buckets as keras-hub's T5MultiHeadAttention (Mesh TensorFlow's
`_relative_position_bucket`) writes them, on relative_position = memory - context (int):
    bidirectional:  buckets = cast(rp > 0) * (num_buckets // 2) (+ 0); n = abs(rp)
    otherwise:      buckets = 0;                                     n = -minimum(rp, 0)
    large = minimum(max_exact + cast(log(cast(n) / max_exact) / log(max_distance / max_exact)
                                     * (half - max_exact)), half - 1)
    buckets + where(n < max_exact, n, large)         (half = num_buckets // 2 if bidirectional)
is one call of the generated helper `relative_position_bucket(relative_position,
bidirectional=..., num_buckets=..., max_distance=...)`, as Hugging Face's modeling_t5.py
writes it. The ops are matched loosely (to find the relative position and the constants)
and the meaning is then checked on TF itself: the pattern's output for relative positions
fed over +-3 max_distance must be the formula's, value for value."""

from __future__ import annotations

import math

import numpy as np

from codegen.frontends.tensorflow.context import tensor_info
from codegen.frontends.tensorflow.rewrites import rewrite

SKIP = ("Identity", "Cast")


def _skip(tensor):
    while tensor.op.type in SKIP and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _scalar(tensor) -> float | None:
    """A constant scalar's value, else None."""
    from tensorflow.python.framework import tensor_util

    value = tensor_util.constant_value(tensor)
    if value is None or np.asarray(value).size != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


def _select(tensor):
    """(n, max_exact, half - 1, large) of where(n < max_exact, n, minimum(large, half - 1)),
    else None."""
    op = tensor.op
    if op.type not in ("Select", "SelectV2") or op.inputs[0].op.type != "Less":
        return None
    less, n = op.inputs[0].op, op.inputs[1]
    clamp = op.inputs[2].op
    if less.inputs[0] is not n or clamp.type != "Minimum":
        return None
    max_exact, top = _scalar(less.inputs[1]), _scalar(clamp.inputs[1])
    if max_exact is None or top is None:
        return None
    return n, int(max_exact), int(top), clamp.inputs[0]


def _relative(n):
    """(relative position, bidirectional) behind n = abs(rp) or -minimum(rp, 0), else None."""
    op = n.op
    if op.type == "Abs":
        return op.inputs[0], True
    if op.type == "Neg" and op.inputs[0].op.type == "Minimum":
        minimum = op.inputs[0].op
        if _scalar(minimum.inputs[1]) == 0:
            return minimum.inputs[0], False
    return None


def _ratios(tensor, depth: int = 0) -> list[float]:
    """max_distance / max_exact candidates: what divides a Log's result on the way to
    `tensor`, a constant log(ratio) or Log(constant ratio)."""
    op = tensor.op
    if depth > 8 or not op.inputs:
        return []
    found = []
    if op.type in ("RealDiv", "Div") and _skip(op.inputs[0]).op.type == "Log":
        divisor = _skip(op.inputs[1])
        value = _scalar(divisor)
        if value is not None and value > 0:
            found.append(math.exp(value))
        elif divisor.op.type == "Log" and _scalar(divisor.op.inputs[0]) is not None:
            found.append(_scalar(divisor.op.inputs[0]))
    for item in op.inputs:
        found += _ratios(item, depth + 1)
    return found


def bucket(op):
    """(relative_position, bidirectional, num_buckets, max_distance candidates) if `op` ends
    the pattern (structure only), else None."""
    if op.type not in ("AddV2", "Add") or not op.outputs[0].dtype.is_integer:
        return None
    for a, b in ((0, 1), (1, 0)):
        found = _select(_skip(op.inputs[b]))
        if found is None:
            continue
        n, max_exact, top, large = found
        relative = _relative(n)
        if relative is None or max_exact <= 0:
            continue
        rp, bidirectional = relative
        if not bidirectional and _scalar(op.inputs[a]) != 0:
            continue
        if bidirectional and _scalar(op.inputs[a]) is None and rp not in _ancestors(op.inputs[a]):
            continue
        num_buckets = 2 * (top + 1) if bidirectional else top + 1
        distances = sorted({round(max_exact * ratio) for ratio in _ratios(large)})
        if distances and rp.dtype.is_integer:
            return rp, bidirectional, num_buckets, distances
    return None


def _ancestors(tensor, depth: int = 0) -> set:
    if depth > 6:
        return set()
    found = {tensor}
    for item in tensor.op.inputs:
        found |= _ancestors(item, depth + 1)
    return found


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> np.ndarray:
    """The formula in numpy, float32 as TF computes it."""
    rp = relative_position.astype("int64")
    buckets = np.zeros_like(rp)
    if bidirectional:
        num_buckets //= 2
        buckets += (rp > 0).astype("int64") * num_buckets
        rp = np.abs(rp)
    else:
        rp = -np.minimum(rp, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.log(rp.astype("float32") / np.float32(max_exact)) \
            / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
        large = max_exact + np.where(np.isfinite(scaled), scaled, 0).astype("int64")
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(rp < max_exact, rp, large)


def _checked(ctx, op, rp, bidirectional: bool, num_buckets: int, max_distance: int) -> bool:
    """Whether TF's output of the pattern, relative positions fed over +-3 max_distance (a
    matrix, as the attention makes it), is the formula's."""
    span = 3 * max_distance + 1
    value = np.arange(-span, span + 1).astype(rp.dtype.as_numpy_dtype)
    value = np.concatenate([value, np.zeros(-value.size % 8, value.dtype)]).reshape(8, -1)
    if rp.shape.rank is not None and rp.shape.rank != 2:
        return False
    got = ctx.run_fed([op.outputs[0]], {rp: value})
    if got is None or got[0].shape != value.shape:
        return False
    return bool(np.array_equal(got[0], relative_position_bucket(value, bidirectional,
                                                                  num_buckets, max_distance)))


def _reads(op):
    """The op's own inputs (its handler's, should the check fail) and the relative position
    (the dead arithmetic is pruned)."""
    found = bucket(op)
    return None if found is None else [*op.inputs, found[0]]


def _relative_ref(ctx, rp) -> str:
    """memory - context without keras-hub's `+ query_start_index` when that is a constant 0
    (the Const would be a buffer of its own), else rp's own ref."""
    op = rp.op
    if op.type != "Sub" or op.inputs[1].op.type not in ("AddV2", "Add"):
        return ctx.ref_of(rp)
    memory, shifted = op.inputs[0], op.inputs[1].op
    for a, b in ((0, 1), (1, 0)):
        context = shifted.inputs[a]
        if _scalar(shifted.inputs[b]) == 0 and context.shape.rank == 2 \
                and ctx.converted(context) is not None and ctx.converted(memory) is not None:
            return ctx.emit("sub", [ctx.ref_of(memory), ctx.ref_of(context)],
                            suffix="relative_position", outputs=[tensor_info(rp)])
    return ctx.ref_of(rp)


@rewrite("AddV2", "Add", reads=_reads)
def match_position_bucket(ctx) -> bool:
    found = bucket(ctx.op)
    if found is None:
        return False
    rp, bidirectional, num_buckets, distances = found
    for max_distance in distances:
        if _checked(ctx, ctx.op, rp, bidirectional, num_buckets, max_distance):
            break
    else:
        return False
    ctx.emit("relative_position_bucket", [_relative_ref(ctx, rp)],
             attrs={"bidirectional": bidirectional, "num_buckets": num_buckets,
                    "max_distance": max_distance})
    return True
