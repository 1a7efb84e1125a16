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
        attrs={"epsilon": float(ctx.attr("epsilon")), "momentum": ctx.bn_momentum(weights)},
        weights=weights,
    )


def _moving_statistics(ctx) -> dict[str, str]:
    """The `moving_mean`/`moving_variance` variables beside a training-mode batch norm
    (TF-slim and Keras name them so), for an eval-mode model."""
    found = {}
    for role, suffix in (("mean", "moving_mean"), ("variance", "moving_variance")):
        name = f"{ctx.scope}/{suffix}"
        if name not in ctx.variable_names():
            ctx.fail(f"batch norm in training mode and no {name!r} variable to take the "
                     "moving statistics from; export the graph with is_training=False")
        found[role] = ctx.checkpoint_weight(name)
    ctx.warn("the graph was built for training (batch norm with batch statistics): "
                       "converted to an eval-mode model that uses the moving statistics")
    return found


# -- batch norm written as arithmetic ----------------------------------------------------------
# Keras 3 (and tf.nn.batch_normalization) compute inference batch norm as
#     m = rsqrt(variance + epsilon) [* gamma];  y = x * m + ([beta] - mean * m)
# In a frozen graph every operand but x is a constant, so we can read the statistics back
# and emit a real batch_norm: the generated model gets nn.BatchNorm2d (trainable, with running
# statistics) instead of two anonymous constants.


# -- layer norm written as arithmetic -----------------------------------------------------------
# Keras 3 LayerNormalization (tf.nn.moments + batch-norm arithmetic) over the last axis:
#     mean = mean(x, -1); var = mean((x - mean) ** 2, -1); m = rsqrt(var + eps) * gamma
#     y = x * m + (-mean * m + beta)




# -- local response normalisation ----------------------------------------------------------------
@handler("LRN", ir="lrn")
def local_response_norm(ctx) -> None:
    """x / (bias + alpha * sum of x ** 2 over depth_radius channels on each side) ** beta,
    over the last (channel) axis of an NHWC image."""
    if ctx.rank(0) != 4:
        ctx.fail("LRN needs a rank-4 (NHWC) input")
    attrs = {"depth_radius": int(ctx.attr("depth_radius")), "bias": float(ctx.attr("bias")),
             "alpha": float(ctx.attr("alpha")), "beta": float(ctx.attr("beta")), "axis": 3}
    ctx.emit("lrn", [ctx.input(0)], attrs=attrs)
