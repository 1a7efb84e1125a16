"""Batch normalisation: FusedBatchNorm, FusedBatchNormV2, FusedBatchNormV3."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler

ROLES = ("scale", "offset", "mean", "variance")  # inputs 1..4


@handler("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", ir="batch_norm")
def fused_batch_norm(ctx) -> None:
    if ctx.attr("data_format", "NHWC") != "NHWC":
        ctx.fail("only NHWC batch norm is supported")
    if ctx.attr("is_training"):
        ctx.fail("batch norm in training mode; export the graph with is_training=False")
    channels = ctx.input_info(0).shape[-1]
    weights = {}
    for index, role in enumerate(ROLES, start=1):
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
