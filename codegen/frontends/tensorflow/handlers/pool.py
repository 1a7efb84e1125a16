"""Pooling: MaxPool, AvgPool, MaxPool3D, AvgPool3D (Keras' 1-D pooling, ExpandDims -> MaxPool
-> Squeeze, is rewrites/conv1d.py)."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler


def _pool(ctx, ir_op: str) -> None:
    pool_with(ctx, ir_op, ctx.attr("ksize"), ctx.attr("strides"))


def pool_with(ctx, ir_op: str, ksize: list[int], strides: list[int]) -> None:
    """The pool of window `ksize` and `strides` (TF's [1, ..., 1] form)."""
    if ctx.attr("data_format", "NHWC") not in ("NHWC", "NDHWC"):
        ctx.fail("only NHWC / NDHWC pooling is supported")
    if ksize[0] != 1 or ksize[-1] != 1:
        ctx.fail("pooling over the batch or channel axis is not supported")
    ctx.emit(
        ir_op,
        [ctx.input(0)],
        attrs={
            "kernel_size": list(ksize[1:-1]),
            "strides": list(strides[1:-1]),
            "padding": ctx.attr("padding"),
        },
    )


@handler("MaxPool", ir="max_pool2d")
def max_pool(ctx) -> None:
    _pool(ctx, "max_pool2d")


@handler("AvgPool", ir="avg_pool2d")
def avg_pool(ctx) -> None:
    _pool(ctx, "avg_pool2d")


@handler("MaxPool3D", ir="max_pool3d")
def max_pool3d(ctx) -> None:
    _pool(ctx, "max_pool3d")


@handler("AvgPool3D", ir="avg_pool3d")
def avg_pool3d(ctx) -> None:
    _pool(ctx, "avg_pool3d")
