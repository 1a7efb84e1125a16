"""What the pattern matchers share: looking through no-op ops and reading constants."""

from __future__ import annotations

import numpy as np

SKIP = ("Identity", "StopGradient", "Reshape", "Squeeze", "ExpandDims", "Cast")


def through(tensor):
    """The op behind `tensor`, looking through identities and reshapes of constants."""
    op = tensor.op
    while op.type in SKIP and op.inputs:
        op = op.inputs[0].op
    return op


def split_binary(ctx, op, want: str):
    """(the input whose op is `want`, the other input) of a binary op, or None."""
    a, b = op.inputs[0], op.inputs[1]
    if through(a).type == want:
        return a, b
    if through(b).type == want:
        return b, a
    return None


def channels_of(ctx, tensor, channels: int) -> np.ndarray | None:
    """A constant's value as [channels] float32, if it is per-channel on the last axis."""
    if ctx.kind_of(tensor) != "constant":
        return None
    value = np.asarray(ctx.value_of(tensor), dtype="float32")
    if value.size == 1:
        return np.full(channels, value.item(), "float32")
    if value.shape[-1:] != (channels,) or value.size != channels:
        return None
    return value.reshape(channels)


def same_number(value: np.ndarray, expected: float, exact: bool = False) -> bool:
    """Whether a one-element constant is `expected` as its own dtype holds it (a bfloat16
    model's 1 / sqrt(2) is 0.707031); float32 within 1e-6 unless `exact`."""
    number = float(value.reshape(-1)[0])
    if value.dtype.name in ("bfloat16", "float16"):
        return number == float(np.asarray(expected, dtype=value.dtype))
    return number == expected if exact else abs(number - expected) < 1e-6


def channel_vector(ctx, op, index: int, channels: int, suffix: str = "value") -> str | None:
    """The IR weight of input `index` of `op` if it is a [channels] variable or constant (a
    constant the pattern folded becomes a new weight `<op>/<suffix>`)."""
    tensor = op.inputs[index]
    if ctx.kind_of(tensor) in ("weight", "variable") and tensor.shape.as_list() == [channels]:
        return ctx.of(op).weight(index)
    value = channels_of(ctx, tensor, channels)
    return None if value is None else ctx.channel_weight(tensor, value, f"{op.name}/{suffix}")


def times_constant(ctx, op, expected: float):
    """The tensor t if op is t * c (either order) with c == expected (float32), else None."""
    for index in (0, 1):
        constant, other = op.inputs[index], op.inputs[1 - index]
        if ctx.kind_of(constant) == "constant" and ctx.kind_of(other) != "constant":
            value = ctx.value_of(constant)
            if value.size == 1 and same_number(value, expected):
                return other
    return None


def plus_constant(ctx, op, expected: float):
    """t if op is t + c (either order) with c == expected, else None."""
    for index in (0, 1):
        constant, other = op.inputs[index], op.inputs[1 - index]
        if ctx.kind_of(constant) == "constant" and ctx.kind_of(other) != "constant":
            value = ctx.value_of(constant)
            if value.size == 1 and same_number(value, expected, exact=True):
                return other
    return None


def weight_matmul(ctx, tensor):
    """The MatMul behind `tensor` when it is a plain x @ W of a weight or constant W (no
    transposed operand), else None."""
    matmul = tensor.op
    if matmul.type != "MatMul" or matmul.get_attr("transpose_a") or matmul.get_attr("transpose_b"):
        return None
    return matmul if ctx.kind_of(matmul.inputs[1]) in ("weight", "constant") else None
