"""Convolutions and fully-connected layers: Conv2D, DepthwiseConv2dNative, BiasAdd, MatMul."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler


def _check_nhwc(ctx) -> None:
    if ctx.attr("data_format", "NHWC") not in ("NHWC", "N...C"):
        ctx.fail(f"data_format {ctx.attr('data_format')} is not supported (only NHWC)")


def _padding(ctx):
    padding = ctx.attr("padding")
    if padding != "EXPLICIT":
        return padding
    pads = list(ctx.attr("explicit_paddings"))  # [n0, n1, h0, h1, w0, w1, c0, c1]
    return [pads[2:4], pads[4:6]]


@handler("Conv2D", ir="conv2d")
def conv2d(ctx) -> None:
    _check_nhwc(ctx)
    strides, dilations = ctx.attr("strides"), ctx.attr("dilations")
    kernel_in = ctx.input_info(1).shape[2]
    groups = ctx.input_info(0).shape[3] // kernel_in if kernel_in else 1
    ctx.emit(
        "conv2d",
        [ctx.input(0)],
        attrs={
            "strides": list(strides[1:3]),
            "dilations": list(dilations[1:3]),
            "padding": _padding(ctx),
            "groups": groups,
        },
        weights={"kernel": ctx.weight(1)},
    )


@handler("DepthwiseConv2dNative", ir="conv2d")
def depthwise_conv2d(ctx) -> None:
    """A depthwise conv is a grouped conv with groups = in_channels; the kernel
    [H, W, C, M] is stored as the equivalent HWIO kernel [H, W, 1, C * M]."""
    _check_nhwc(ctx)
    height, width, channels, multiplier = ctx.input_info(1).shape
    strides, dilations = ctx.attr("strides"), ctx.attr("dilations")
    kernel = ctx.weight(1, transforms=[("reshape", (height, width, 1, channels * multiplier))])
    ctx.emit(
        "conv2d",
        [ctx.input(0)],
        attrs={
            "strides": list(strides[1:3]),
            "dilations": list(dilations[1:3]),
            "padding": _padding(ctx),
            "groups": channels,
        },
        weights={"kernel": kernel},
    )


@handler("BiasAdd", ir="bias_add")
def bias_add(ctx) -> None:
    _check_nhwc(ctx)
    ctx.emit("bias_add", [ctx.input(0)], weights={"bias": ctx.weight(1)})


@handler("MatMul", ir="linear")
def matmul(ctx) -> None:
    if ctx.attr("transpose_a") or ctx.kind(1) not in ("weight", "constant"):
        ctx.fail("only x @ W with a constant or variable W is supported")
    transforms = [("transpose", (1, 0))] if ctx.attr("transpose_b") else []
    ctx.emit("linear", [ctx.input(0)], weights={"kernel": ctx.weight(1, transforms=transforms)})
