"""Batch norm written as arithmetic (Keras 3, tf.nn.batch_normalization):
    m = rsqrt(variance + epsilon) [* gamma];  y = x * m + ([beta] - mean * m)
In a frozen graph every operand but x is a constant, so the statistics are read back and one
`batch_norm` is emitted: the generated model gets nn.BatchNorm2d (trainable, with running
statistics) instead of two anonymous constants.
"""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import channels_of, split_binary, through


@rewrite("Add", "AddV2")
def match_batch_norm(ctx) -> bool:
    """Emit batch_norm for `x * m + shift` (this op is the final add); False if no match."""
    if ctx.op.type not in ("Add", "AddV2") or ctx.rank(0) not in (2, 4):
        return False
    channels = ctx.output_info(0).shape[-1]
    found = split_binary(ctx, ctx.op, "Mul")
    if not channels or found is None:
        return False
    product, shift = found
    x, m = product.op.inputs[0], product.op.inputs[1]
    if ctx.kind_of(x) == "constant":
        x, m = m, x
    if ctx.kind_of(x) == "constant" or ctx.kind_of(m) != "constant":
        return False
    stats = _statistics(ctx, m, shift, channels)
    if stats is None:
        return False
    scope = ctx.scope.removesuffix("/batchnorm")
    tensors = stats.pop("tensors")
    weights = {role: ctx.channel_weight(tensors.get(role), value, f"{scope}/{role}")
               for role, value in stats.items() if role != "epsilon"}
    ctx.emit("batch_norm", [ctx.ref_of(x)],
             attrs={"epsilon": float(stats["epsilon"][0]), "momentum": ctx.bn_momentum(weights)},
             weights=weights, scope=scope)
    return True


def _statistics(ctx, m, shift, channels: int) -> dict | None:
    m_op = through(m)
    gamma = np.ones(channels, "float32")
    tensors = {}  # role -> the constant it was read from, where it was read as it is
    if m_op.type == "Mul":
        split = split_binary(ctx, m_op, "Rsqrt")
        if split is None:
            return None
        rsqrt, gamma = through(split[0]), channels_of(ctx, split[1], channels)
        tensors["scale"] = split[1]
    elif m_op.type == "Rsqrt":
        rsqrt = m_op
    else:
        return None
    add = through(rsqrt.inputs[0])
    if add.type not in ("Add", "AddV2"):
        return None
    variance, epsilon = (channels_of(ctx, t, channels) for t in add.inputs)
    if variance is None or epsilon is None:
        return None
    tensors["variance"] = add.inputs[0]
    if np.unique(epsilon).size != 1:  # the scalar is the one broadcast to every channel
        variance, epsilon = epsilon, variance
        tensors["variance"] = add.inputs[1]
    beta, mean = _offset_and_mean(ctx, m, shift, channels, tensors)
    if gamma is None or beta is None or mean is None or np.unique(epsilon).size != 1:
        return None
    return {"scale": gamma, "offset": beta, "mean": mean, "variance": variance,
            "epsilon": epsilon, "tensors": tensors}


def _offset_and_mean(ctx, m, shift, channels: int, tensors: dict):
    """shift = beta - mean * m, or -(mean * m) / (-mean) * m without beta."""
    op = through(shift)
    beta, sign = np.zeros(channels, "float32"), 1.0
    if op.type == "Sub":
        beta, term = channels_of(ctx, op.inputs[0], channels), through(op.inputs[1])
        tensors["offset"] = op.inputs[0]
    elif op.type == "Neg":
        term = through(op.inputs[0])
    elif op.type == "Mul":
        term, sign = op, -1.0  # (-mean) * m: the other operand is minus the mean
    else:
        return None, None
    if term.type != "Mul":
        return None, None
    a, b = term.inputs
    mean_tensor = b if through(a) is through(m) else a if through(b) is through(m) else None
    if mean_tensor is None:
        return None, None
    mean = channels_of(ctx, mean_tensor, channels)
    if sign == 1.0:
        tensors["mean"] = mean_tensor
    return beta, None if mean is None else sign * mean
