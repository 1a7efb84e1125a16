"""The causal mask keras-hub's decoders build (`compute_causal_mask`, merged with the padding
mask by `ops.minimum`) and its softmax reads as a boolean:
    i = expand_dims(range(0, T) + 0, 1); j = range(0, T)            (T = shape(x)[1], twice)
    causal = cast(broadcast_to(expand_dims(i >= j, 0), [N, T, T]))
    mask = expand_dims(minimum(expand_dims(padding, 1), causal), 1) > 0   (or causal alone)
or, without padding, the boolean triangle itself (expand_dims(broadcast_to(...), 1)), and-ed
with ones_like(scores) as Keras's MultiHeadAttention does.
It depends on shapes only, so it is matched on the TF ops (no IR): `causal_mask(condition)`
gives (x, padding or None) - the mask is `tril(ones(T, T)) & (padding > 0)` - else None;
Mistral's sliding window (minimum(causal, cast(i < j + W))) is that mask with
`.triu(1 - W)`, W read by `sliding_window(condition)`.
The SelectV2 handler and the attention rewrite read it through this one function."""

from __future__ import annotations

import numpy as np


def _constant(tensor):
    from tensorflow.python.framework import tensor_util

    value = tensor_util.constant_value(tensor)
    return None if value is None else np.asarray(value).reshape(-1)


def _is(tensor, value) -> bool:
    constant = _constant(tensor)
    return constant is not None and constant.size == 1 and float(constant[0]) == value


def _skip_cast(tensor):
    while tensor.op.type == "Cast":
        tensor = tensor.op.inputs[0]
    return tensor


def _expanded(tensor, axis: int, new_axes: int = 0):
    """t behind expand_dims(t, axis) or t[:, None] (a strided slice taking every element
    with one new axis there, as keras-hub's Llama writes mask[:, None, :, :]; `new_axes`, a
    bit mask, for several: Gemma's mask[:, None, None, :, :]), else None."""
    op = tensor.op
    if op.type == "ExpandDims" and _is(op.inputs[1], axis) and not new_axes:
        return op.inputs[0]
    new_axes = new_axes or 1 << axis
    if op.type != "StridedSlice" or op.get_attr("new_axis_mask") != new_axes \
            or op.get_attr("shrink_axis_mask") or op.get_attr("ellipsis_mask"):
        return None
    strides, rank = _constant(op.inputs[3]), op.outputs[0].shape.rank
    full = (1 << (rank or 0)) - 1 - new_axes  # every other axis taken whole
    if strides is None or rank is None or strides.size != rank or np.any(strides != 1) \
            or op.get_attr("begin_mask") & full != full or op.get_attr("end_mask") & full != full:
        return None
    return op.inputs[0]


def _length(tensor):
    """(x, axis) when `tensor` is shape(x)[axis] (through casts), else None."""
    op = _skip_cast(tensor).op
    if op.type != "StridedSlice" or op.get_attr("shrink_axis_mask") != 1:
        return None
    shape, begin = op.inputs[0].op, _constant(op.inputs[1])
    if shape.type != "Shape" or begin is None or begin.size != 1:
        return None
    return shape.inputs[0], int(begin[0])


def _arange(tensor):
    """(x, axis) when `tensor` is range(0, shape(x)[axis], 1) (+ 0), else None."""
    op = tensor.op
    if op.type in ("AddV2", "Add") and _is(op.inputs[1], 0):
        op = op.inputs[0].op
    if op.type != "Range" or not _is(op.inputs[0], 0) or not _is(op.inputs[2], 1):
        return None
    return _length(op.inputs[1])


def _triangle(tensor):
    """x when `tensor` is (cast of) broadcast_to(expand_dims(i >= j, 0), shape) with
    i = range(T)[:, None], j = range(T), T = shape(x)[1], else None."""
    op = _skip_cast(tensor).op
    if op.type != "BroadcastTo":
        return None
    compare = _expanded(op.inputs[0], 0)
    if compare is None or compare.op.type != "GreaterEqual":
        return None
    rows = _expanded(compare.op.inputs[0], 1)
    i = None if rows is None else _arange(rows)
    j = _arange(compare.op.inputs[1])
    if i is None or j is None or i[0] is not j[0] or i[1] != 1 or j[1] != 1:
        return None
    return i[0]


def causal_mask(condition, grouped: bool = False):
    """(x, padding [N, S] or None) when the boolean `condition` [N, 1, T, T] (grouped: [N,
    1, 1, T, T], Gemma's) is the causal mask of sequence x (T = x's axis 1), and-ed with
    padding > 0 if given; else None."""
    op = condition.op
    if op.type == "LogicalAnd":  # ones_like(scores) & mask (Keras's MultiHeadAttention)
        for index in (0, 1):
            fill = op.inputs[index].op
            if fill.type == "Fill" and fill.inputs[0].op.type == "Shape" and _is(fill.inputs[1], 1):
                return causal_mask(op.inputs[1 - index], grouped)
        return None
    if op.type == "ExpandDims" and condition.dtype.is_bool and not grouped:  # the triangle
        x = _triangle(_expanded(condition, 1)) if _expanded(condition, 1) is not None else None
        return None if x is None else (x, None)
    if op.type != "Greater" or not _is(op.inputs[1], 0):
        return None
    merged = _merged(op.inputs[0], grouped)
    if merged is None:
        return None
    x = _causal(merged)[0]
    if x is not None:
        return x, None
    if merged.op.type != "Minimum":
        return None
    for index in (0, 1):
        x = _causal(merged.op.inputs[index])[0]
        padding = _expanded(merged.op.inputs[1 - index], 1)
        if (x is not None and padding is not None and padding.shape.rank == 2
                and padding.dtype.is_integer):
            return x, padding
    return None


def sliding_window(condition, grouped: bool = False) -> int | None:
    """W when the causal mask `condition` (causal_mask(condition) is not None) also hides
    the keys W or more before the query (Mistral's band, i < j + W), else None."""
    op = condition.op
    if op.type == "LogicalAnd":
        return next((w for t in op.inputs if (w := sliding_window(t, grouped)) is not None),
                    None)
    if op.type != "Greater":
        return None
    merged = _merged(op.inputs[0], grouped)
    if merged is None:
        return None
    candidates = [merged] + (list(merged.op.inputs) if merged.op.type == "Minimum" else [])
    return next((w for t in candidates if (w := _causal(t)[1]) is not None), None)


def _merged(tensor, grouped: bool):
    """The [N, T, S] mask behind its [N, 1, T, S] (grouped: [N, 1, 1, T, S]) form."""
    return _expanded(tensor, 1, new_axes=0b110) if grouped else _expanded(tensor, 1)


def _causal(tensor):
    """(x, W or None) when `tensor` is the causal triangle of x, or (Mistral's sliding
    window) minimum(triangle, cast(i + c1 < j + c2)) with W = c2 - c1; else (None, None)."""
    x = _triangle(tensor)
    if x is not None:
        return x, None
    if tensor.op.type != "Minimum":
        return None, None
    for index in (0, 1):
        x = _triangle(tensor.op.inputs[index])
        window = None if x is None else _band(tensor.op.inputs[1 - index], x)
        if window is not None:
            return x, window
    return None, None


def _offset(tensor, axis: int):
    """(x, c) when `tensor` is expand_dims(range(shape(x)[1]), axis) + c (c a constant
    integer, 0 if absent), else None."""
    op, c = tensor.op, 0
    if op.type in ("AddV2", "Add"):
        constant = _constant(op.inputs[1])
        if constant is None or constant.size != 1 or float(constant[0]) != int(constant[0]):
            return None
        tensor, c = op.inputs[0], int(constant[0])
    inner = _expanded(tensor, axis)
    found = None if inner is None else _arange(inner)
    return None if found is None or found[1] != 1 else (found[0], c)


def _band(tensor, x) -> int | None:
    """W when `tensor` is (a cast of) i + c1 < j + c2 (i the query's position [:, None], j
    the key's [None, :], both of x) with W = c2 - c1 >= 1, else None."""
    op = _skip_cast(tensor).op
    if op.type != "Less":
        return None
    rows, cols = _offset(op.inputs[0], 1), _offset(op.inputs[1], 0)
    if rows is None or cols is None or rows[0] is not x or cols[0] is not x:
        return None
    window = cols[1] - rows[1]
    return window if window >= 1 else None
