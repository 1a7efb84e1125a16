"""Pooling: MaxPool, AvgPool, MaxPool3D, AvgPool3D, MaxPoolWithArgmax (Keras' 1-D pooling,
ExpandDims -> MaxPool -> Squeeze, is rewrites/conv1d.py)."""

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


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's 'SAME' padding of one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@handler("MaxPoolWithArgmax", ir="max_pool_with_argmax")
def max_pool_with_argmax(ctx) -> None:
    """The max pool and where each maximum is in TF's flattened NHWC input (both outputs);
    'SAME' as its explicit pad (the sizes must be known)."""
    ksize, strides = ctx.attr("ksize"), ctx.attr("strides")
    if ksize[0] != 1 or ksize[-1] != 1 or strides[0] != 1 or strides[-1] != 1:
        ctx.fail("pooling over the batch or channel axis is not supported")
    shape = ctx.input_info(0).shape
    if shape is None or len(shape) != 4:
        ctx.fail("MaxPoolWithArgmax needs an image of known rank 4")
    pad = [0, 0, 0, 0]  # top, bottom, left, right
    if ctx.attr("padding") == "SAME":
        if None in shape[1:3]:
            ctx.fail("MaxPoolWithArgmax with 'SAME' padding needs a known height and width")
        pad = [*same_pads(shape[1], ksize[1], strides[1]), *same_pads(shape[2], ksize[2], strides[2])]
    elif ctx.attr("padding") != "VALID":
        ctx.fail(f"padding {ctx.attr('padding')!r} is not supported")
    outputs = [ctx.output_info(0), ctx.output_info(1)]
    ctx.emit("max_pool_with_argmax", [ctx.input(0)], outputs=outputs, attrs={
        "kernel_size": list(ksize[1:3]), "strides": list(strides[1:3]), "pad": pad,
        "include_batch_in_index": bool(ctx.attr("include_batch_in_index", False)), "axis": 3})
