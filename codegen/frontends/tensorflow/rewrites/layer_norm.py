"""Layer norm written as arithmetic (Keras 3 LayerNormalization over the last axis):
    mean = mean(x, -1); var = mean((x - mean) ** 2, -1); m = rsqrt(var + eps) * gamma
    y = x * m + (-mean * m + beta)
and as TF1 writes it (tf.nn.moments, then tf.nn.batch_normalization: what
tf.contrib.layers.layer_norm lowers to, BERT's modeling.py) with gamma and beta variables:
    y = x * m + (beta - mean * m)
"""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import (
    channel_vector,
    channels_of,
    split_binary,
    through,
)


@rewrite("Add", "AddV2")
def match_layer_norm(ctx) -> bool:
    """Emit layer_norm for that pattern over the last axis (this op is the final add)."""
    if ctx.op.type not in ("Add", "AddV2") or not ctx.rank(0):
        return False
    channels = ctx.output_info(0).shape[-1]
    found = split_binary(ctx, ctx.op, "Mul")
    if not channels or found is None:
        return False
    for x, m in (found[0].op.inputs, reversed(found[0].op.inputs)):
        m_op = through(m)
        if m_op.type != "Mul" or ctx.kind_of(x) == "constant":
            continue
        split = split_binary(ctx, m_op, "Rsqrt")
        if split is None:
            continue
        gamma = channels_of(ctx, split[1], channels)
        add = through(split[0]).inputs[0].op
        moments = _moments(ctx, x, add, channels)
        beta, offset = _layer_norm_offset(ctx, found[1], m_op, channels)
        if gamma is None or moments is None or beta is None:
            continue
        scope = ctx.scope
        weights = {"scale": ctx.channel_weight(split[1], gamma, f"{scope}/gamma"),
                   "offset": ctx.channel_weight(offset, beta, f"{scope}/beta")}
        ctx.emit("layer_norm", [ctx.ref_of(x)],
                 attrs={"axis": ctx.rank(0) - 1, "epsilon": moments}, weights=weights)
        return True
    return False


def _moments(ctx, x, add, channels: int) -> float | None:
    """epsilon if `add` is mean((x - mean(x, -1)) ** 2, -1) + epsilon, else None."""
    if add.type not in ("Add", "AddV2"):
        return None
    variance, epsilon = add.inputs
    if ctx.kind_of(variance) == "constant":
        variance, epsilon = epsilon, variance
    if variance.op.type != "Mean" or ctx.kind_of(epsilon) != "constant":
        return None
    difference = variance.op.inputs[0].op
    if difference.type != "SquaredDifference" or difference.inputs[0] is not x:
        return None
    mean = through(difference.inputs[1])
    last = [ctx.rank(0) - 1, -1]
    for reduce in (variance.op, mean):
        if reduce.type != "Mean":
            return None
        axes = ctx.value_of(reduce.inputs[1]).reshape(-1).tolist()
        if len(axes) != 1 or axes[0] not in last:
            return None
    if mean.inputs[0] is not x:
        return None
    value = ctx.value_of(epsilon)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _layer_norm_offset(ctx, shift, m_op, channels: int):
    """(beta, the constant it is read from) if shift = -mean * m + beta (or -mean * m),
    else (None, None)."""
    op = through(shift)
    beta, tensor = np.zeros(channels, "float32"), None
    if op.type in ("Add", "AddV2"):
        a, b = op.inputs
        if ctx.kind_of(a) == "constant":
            a, b = b, a
        beta, op, tensor = channels_of(ctx, b, channels), through(a), b
    if op.type != "Mul" or not any(through(t) is m_op for t in op.inputs):
        return None, None
    if not any(through(t).type == "Neg" for t in op.inputs):
        return None, None
    return beta, tensor


@rewrite("Add", "AddV2")
def match_moments_layer_norm(ctx) -> bool:
    """Emit layer_norm for x * m + (beta - mean * m), m = rsqrt(var + eps) * gamma, the
    moments over the last axis (this op is the final add)."""
    if not ctx.rank(0) or not ctx.output_info(0).shape[-1]:
        return False
    channels = ctx.output_info(0).shape[-1]
    for scaled, shift in (ctx.op.inputs, reversed(ctx.op.inputs)):
        if scaled.op.type != "Mul" or shift.op.type != "Sub":
            continue
        for x, m in (scaled.op.inputs, reversed(scaled.op.inputs)):
            found = _scale(ctx, m.op, channels)
            if found is None or ctx.kind_of(x) == "constant":
                continue
            gamma, epsilon_add = found
            epsilon = _moments(ctx, x, epsilon_add, channels)
            beta = _beta(ctx, shift.op, m, x, channels)
            if epsilon is None or beta is None:
                continue
            ctx.emit("layer_norm", [ctx.ref_of(x)],
                     attrs={"axis": ctx.rank(0) - 1, "epsilon": epsilon},
                     weights={"scale": gamma, "offset": beta},
                     scope=ctx.scope.removesuffix("/batchnorm"))
            return True
    return False


def _scale(ctx, op, channels: int):
    """(gamma's IR weight, the var + eps op) if op is rsqrt(var + eps) * gamma, else None."""
    if op.type != "Mul":
        return None
    for index in (0, 1):
        rsqrt = op.inputs[index].op
        if rsqrt.type == "Rsqrt":
            gamma = channel_vector(ctx, op, 1 - index, channels)
            return None if gamma is None else (gamma, rsqrt.inputs[0].op)
    return None


def _beta(ctx, sub, m, x, channels: int) -> str | None:
    """beta's IR weight if `sub` is beta - mean(x, -1) * m, else None."""
    product = sub.inputs[1].op
    if product.type != "Mul" or not any(t is m for t in product.inputs):
        return None
    mean = next(through(t) for t in product.inputs if t is not m)
    if mean.type != "Mean" or mean.inputs[0] is not x:
        return None
    return channel_vector(ctx, sub, 0, channels)
