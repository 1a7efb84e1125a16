"""Convolutions and fully-connected layers: Conv2D, DepthwiseConv2dNative, BiasAdd, MatMul,
and the two halves of a dilated conv (SpaceToBatchND/BatchToSpaceND: the rewrite
rewrites/dilated_conv.py turns the three ops into one conv2d)."""

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
    emit_conv(ctx, *conv_weights(ctx))


@handler("DepthwiseConv2dNative", ir="conv2d")
def depthwise_conv2d(ctx) -> None:
    emit_conv(ctx, *conv_weights(ctx))


def conv_weights(ctx) -> tuple[int, str]:
    """(groups, the IR kernel) of a Conv2D or DepthwiseConv2dNative. A depthwise conv is a
    grouped conv with groups = in_channels; its kernel [H, W, C, M] is read as the
    equivalent HWIO kernel [H, W, 1, C * M]."""
    _check_nhwc(ctx)
    if ctx.op.type == "DepthwiseConv2dNative":
        height, width, channels, multiplier = ctx.input_info(1).shape
        return channels, ctx.weight(1, transforms=[("reshape", (height, width, 1,
                                                                  channels * multiplier))])
    kernel_in = ctx.input_info(1).shape[2]
    return (ctx.input_info(0).shape[3] // kernel_in if kernel_in else 1), ctx.weight(1)


def emit_conv(ctx, groups: int, kernel: str, *, source: str | None = None,
              dilations: list[int] | None = None, padding=None, outputs=None) -> None:
    """One conv2d node; a rewrite (dilated_conv) may give its own input, dilations, padding
    and output."""
    ctx.emit(
        "conv2d",
        [source or ctx.input(0)],
        attrs={"strides": list(ctx.attr("strides")[1:3]),
               "dilations": dilations or list(ctx.attr("dilations")[1:3]),
               "padding": padding or _padding(ctx), "groups": groups},
        weights={"kernel": kernel},
        outputs=outputs,
    )


def single_consumer(tensor):
    consumers = tensor.consumers()
    return consumers[0] if len(consumers) == 1 else None


@handler("SpaceToBatchND", ir="conv2d")
def space_to_batch(ctx) -> None:
    """Only as the first half of a dilated conv (rewrites/dilated_conv.py): the conv reads
    our input directly."""
    conv = single_consumer(ctx.op.outputs[0])
    if conv is None or conv.type not in ("Conv2D", "DepthwiseConv2dNative"):
        ctx.fail("SpaceToBatchND is supported only in front of a dilated convolution")
    ctx.alias(ctx.op.outputs[0], ctx.input(0))  # never read: see the rewrite


@handler("BatchToSpaceND", ir="conv2d")
def batch_to_space(ctx) -> None:
    """The end of a dilated conv: the conv node already has our output shape."""
    conv = ctx.op.inputs[0].op
    if conv.type not in ("Conv2D", "DepthwiseConv2dNative") or conv.inputs[0].op.type != "SpaceToBatchND":
        ctx.fail("BatchToSpaceND is supported only after a dilated convolution")
    ctx.alias(ctx.op.outputs[0], ctx.input(0))


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
