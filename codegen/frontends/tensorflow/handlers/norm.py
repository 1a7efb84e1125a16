"""Batch normalisation: FusedBatchNorm, FusedBatchNormV2, FusedBatchNormV3."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler

ROLES = ("scale", "offset", "mean", "variance")  # inputs 1..4


@handler("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", ir="batch_norm")
def fused_batch_norm(ctx) -> None:
    if ctx.attr("data_format", "NHWC") != "NHWC":
        ctx.fail("only NHWC batch norm is supported")
    channels = ctx.input_info(0).shape[-1]
    weights = {}
    if ctx.attr("is_training"):  # batch statistics: use the moving ones the graph updates
        weights.update(_moving_statistics(ctx))
    for index, role in enumerate(ROLES, start=1):
        if role in weights:
            continue
        if ctx.is_const(index) and ctx.const(index).size == 1 and channels:
            # a scalar constant (scale/center switched off): store it per channel
            value = np.full(channels, ctx.const(index).item(), "float32")
            weights[role] = ctx.new_weight(f"{ctx.scope}/{role}", value)
        else:
            weights[role] = ctx.weight(index)
    ctx.emit(
        "batch_norm",
        [ctx.input(0)],
        attrs={"epsilon": float(ctx.attr("epsilon")), "momentum": ctx.converter.bn_momentum},
        weights=weights,
    )


def _moving_statistics(ctx) -> dict[str, str]:
    """The `moving_mean`/`moving_variance` variables beside a training-mode batch norm
    (TF-slim and Keras name them so), for an eval-mode model."""
    found = {}
    for role, suffix in (("mean", "moving_mean"), ("variance", "moving_variance")):
        name = f"{ctx.scope}/{suffix}"
        if name not in ctx.converter.model.variable_names():
            ctx.fail(f"batch norm in training mode and no {name!r} variable to take the "
                     "moving statistics from; export the graph with is_training=False")
        found[role] = ctx.checkpoint_weight(name)
    ctx.converter.warn("the graph was built for training (batch norm with batch statistics): "
                       "converted to an eval-mode model that uses the moving statistics")
    return found


# -- batch norm written as arithmetic ----------------------------------------------------------
# Keras 3 (and tf.nn.batch_normalization) compute inference batch norm as
#     m = rsqrt(variance + epsilon) [* gamma];  y = x * m + ([beta] - mean * m)
# In a frozen graph every operand but x is a constant, so we can read the statistics back
# and emit a real batch_norm: the generated model gets nn.BatchNorm2d (trainable, with running
# statistics) instead of two anonymous constants.

SKIP = ("Identity", "StopGradient", "Reshape", "Squeeze", "ExpandDims", "Cast")


def _through(tensor):
    """The op behind `tensor`, looking through identities and reshapes of constants."""
    op = tensor.op
    while op.type in SKIP and op.inputs:
        op = op.inputs[0].op
    return op


def _split(ctx, op, want: str):
    """(the input whose op is `want`, the other input) of a binary op, or None."""
    a, b = op.inputs[0], op.inputs[1]
    if _through(a).type == want:
        return a, b
    if _through(b).type == want:
        return b, a
    return None


def _channels(ctx, tensor, channels: int) -> np.ndarray | None:
    """A constant's value as [channels] float32, if it is per-channel on the last axis."""
    if ctx.converter.kind(tensor) != "constant":
        return None
    value = np.asarray(ctx.converter.fold(tensor), dtype="float32")
    if value.size == 1:
        return np.full(channels, value.item(), "float32")
    if value.shape[-1:] != (channels,) or value.size != channels:
        return None
    return value.reshape(channels)


def match_batch_norm(ctx) -> bool:
    """Emit batch_norm for `x * m + shift` (this op is the final add); False if no match."""
    if ctx.op.type not in ("Add", "AddV2") or ctx.rank(0) not in (2, 4):
        return False
    channels = ctx.output_info(0).shape[-1]
    found = _split(ctx, ctx.op, "Mul")
    if not channels or found is None:
        return False
    product, shift = found
    x, m = product.op.inputs[0], product.op.inputs[1]
    if ctx.converter.kind(x) == "constant":
        x, m = m, x
    if ctx.converter.kind(x) == "constant" or ctx.converter.kind(m) != "constant":
        return False
    stats = _statistics(ctx, m, shift, channels)
    if stats is None:
        return False
    scope = ctx.scope.removesuffix("/batchnorm")
    tensors = stats.pop("tensors")
    weights = {role: ctx.channel_weight(tensors.get(role), value, f"{scope}/{role}")
               for role, value in stats.items() if role != "epsilon"}
    ctx.emit("batch_norm", [ctx.converter.ref_of(x)],
             attrs={"epsilon": float(stats["epsilon"][0]), "momentum": ctx.converter.bn_momentum},
             weights=weights, scope=scope)
    return True


def _statistics(ctx, m, shift, channels: int) -> dict | None:
    m_op = _through(m)
    gamma = np.ones(channels, "float32")
    tensors = {}  # role -> the constant it was read from, where it was read as it is
    if m_op.type == "Mul":
        split = _split(ctx, m_op, "Rsqrt")
        if split is None:
            return None
        rsqrt, gamma = _through(split[0]), _channels(ctx, split[1], channels)
        tensors["scale"] = split[1]
    elif m_op.type == "Rsqrt":
        rsqrt = m_op
    else:
        return None
    add = _through(rsqrt.inputs[0])
    if add.type not in ("Add", "AddV2"):
        return None
    variance, epsilon = (_channels(ctx, t, channels) for t in add.inputs)
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
    op = _through(shift)
    beta, sign = np.zeros(channels, "float32"), 1.0
    if op.type == "Sub":
        beta, term = _channels(ctx, op.inputs[0], channels), _through(op.inputs[1])
        tensors["offset"] = op.inputs[0]
    elif op.type == "Neg":
        term = _through(op.inputs[0])
    elif op.type == "Mul":
        term, sign = op, -1.0  # (-mean) * m: the other operand is minus the mean
    else:
        return None, None
    if term.type != "Mul":
        return None, None
    a, b = term.inputs
    mean_tensor = b if _through(a) is _through(m) else a if _through(b) is _through(m) else None
    if mean_tensor is None:
        return None, None
    mean = _channels(ctx, mean_tensor, channels)
    if sign == 1.0:
        tensors["mean"] = mean_tensor
    return beta, None if mean is None else sign * mean


# -- layer norm written as arithmetic -----------------------------------------------------------
# Keras 3 LayerNormalization (tf.nn.moments + batch-norm arithmetic) over the last axis:
#     mean = mean(x, -1); var = mean((x - mean) ** 2, -1); m = rsqrt(var + eps) * gamma
#     y = x * m + (-mean * m + beta)


def match_layer_norm(ctx) -> bool:
    """Emit layer_norm for that pattern over the last axis (this op is the final add)."""
    if ctx.op.type not in ("Add", "AddV2") or not ctx.rank(0):
        return False
    channels = ctx.output_info(0).shape[-1]
    found = _split(ctx, ctx.op, "Mul")
    if not channels or found is None:
        return False
    for x, m in (found[0].op.inputs, reversed(found[0].op.inputs)):
        m_op = _through(m)
        if m_op.type != "Mul" or ctx.converter.kind(x) == "constant":
            continue
        split = _split(ctx, m_op, "Rsqrt")
        if split is None:
            continue
        gamma = _channels(ctx, split[1], channels)
        add = _through(split[0]).inputs[0].op
        moments = _moments(ctx, x, add, channels)
        beta, offset = _layer_norm_offset(ctx, found[1], m_op, channels)
        if gamma is None or moments is None or beta is None:
            continue
        scope = ctx.scope
        weights = {"scale": ctx.channel_weight(split[1], gamma, f"{scope}/gamma"),
                   "offset": ctx.channel_weight(offset, beta, f"{scope}/beta")}
        ctx.emit("layer_norm", [ctx.converter.ref_of(x)],
                 attrs={"axis": ctx.rank(0) - 1, "epsilon": moments}, weights=weights)
        return True
    return False


def _moments(ctx, x, add, channels: int) -> float | None:
    """epsilon if `add` is mean((x - mean(x, -1)) ** 2, -1) + epsilon, else None."""
    if add.type not in ("Add", "AddV2"):
        return None
    variance, epsilon = add.inputs
    if ctx.converter.kind(variance) == "constant":
        variance, epsilon = epsilon, variance
    if variance.op.type != "Mean" or ctx.converter.kind(epsilon) != "constant":
        return None
    difference = variance.op.inputs[0].op
    if difference.type != "SquaredDifference" or difference.inputs[0] is not x:
        return None
    mean = _through(difference.inputs[1])
    last = [ctx.rank(0) - 1, -1]
    for reduce in (variance.op, mean):
        if reduce.type != "Mean":
            return None
        axes = ctx.converter.fold(reduce.inputs[1]).reshape(-1).tolist()
        if len(axes) != 1 or axes[0] not in last:
            return None
    if mean.inputs[0] is not x:
        return None
    value = ctx.converter.fold(epsilon)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _layer_norm_offset(ctx, shift, m_op, channels: int):
    """(beta, the constant it is read from) if shift = -mean * m + beta (or -mean * m),
    else (None, None)."""
    op = _through(shift)
    beta, tensor = np.zeros(channels, "float32"), None
    if op.type in ("Add", "AddV2"):
        a, b = op.inputs
        if ctx.converter.kind(a) == "constant":
            a, b = b, a
        beta, op, tensor = _channels(ctx, b, channels), _through(a), b
    if op.type != "Mul" or not any(_through(t) is m_op for t in op.inputs):
        return None, None
    if not any(_through(t).type == "Neg" for t in op.inputs):
        return None, None
    return beta, tensor
