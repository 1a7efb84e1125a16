"""Convolutions and fully-connected layers: Conv2D, DepthwiseConv2dNative (also dilated, through
SpaceToBatchND/BatchToSpaceND), BiasAdd, MatMul."""

from __future__ import annotations

from codegen.frontends.tensorflow.context import tensor_info
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
    kernel_in = ctx.input_info(1).shape[2]
    groups = ctx.input_info(0).shape[3] // kernel_in if kernel_in else 1
    _emit_conv(ctx, groups, ctx.weight(1))


def _emit_conv(ctx, groups: int, kernel: str) -> None:
    strides, dilations = list(ctx.attr("strides")[1:3]), list(ctx.attr("dilations")[1:3])
    source, padding, outputs = ctx.input(0), _padding(ctx), None
    dilated = _space_to_batch(ctx)
    if dilated is not None:
        source, dilations, padding, output = dilated
        outputs = [tensor_info(output)]
    ctx.emit(
        "conv2d",
        [source],
        attrs={"strides": strides, "dilations": dilations, "padding": padding, "groups": groups},
        weights={"kernel": kernel},
        outputs=outputs,
    )


# -- dilated convolutions --------------------------------------------------------------------
# TF runs a dilated 'SAME' conv as SpaceToBatchND -> conv (VALID) -> BatchToSpaceND. The
# three together are one conv with dilation = block shape and padding = paddings - crops.


def _space_to_batch(ctx):
    """(input ref, dilations, padding, output tensor) if this conv sits in that pattern."""
    before = ctx.op.inputs[0].op
    if before.type != "SpaceToBatchND":
        return None
    after = _single_consumer(ctx.op.outputs[0])
    if after is None or after.type != "BatchToSpaceND" or ctx.attr("padding") != "VALID":
        ctx.fail("SpaceToBatchND -> conv -> BatchToSpaceND is the only supported use")
    fold = ctx.value_of
    block = fold(before.inputs[1]).reshape(-1).tolist()
    paddings, crops = fold(before.inputs[2]).tolist(), fold(after.inputs[2]).tolist()
    if block != fold(after.inputs[1]).reshape(-1).tolist() or len(block) != 2:
        ctx.fail("SpaceToBatchND and BatchToSpaceND with different block shapes")
    padding = [[int(p[0] - c[0]), int(p[1] - c[1])] for p, c in zip(paddings, crops)]
    if any(value < 0 for pair in padding for value in pair):
        ctx.fail("BatchToSpaceND crops more than SpaceToBatchND padded")
    return ctx.ref_of(before.inputs[0]), [int(b) for b in block], padding, after.outputs[0]


def _single_consumer(tensor):
    consumers = tensor.consumers()
    return consumers[0] if len(consumers) == 1 else None


@handler("SpaceToBatchND", ir="conv2d")
def space_to_batch(ctx) -> None:
    """Only as the first half of a dilated conv: the conv reads our input directly."""
    conv = _single_consumer(ctx.op.outputs[0])
    if conv is None or conv.type not in ("Conv2D", "DepthwiseConv2dNative"):
        ctx.fail("SpaceToBatchND is supported only in front of a dilated convolution")
    ctx.alias(ctx.op.outputs[0], ctx.input(0))  # never read: see _space_to_batch


@handler("BatchToSpaceND", ir="conv2d")
def batch_to_space(ctx) -> None:
    """The end of a dilated conv: the conv node already has our output shape."""
    conv = ctx.op.inputs[0].op
    if conv.type not in ("Conv2D", "DepthwiseConv2dNative") or conv.inputs[0].op.type != "SpaceToBatchND":
        ctx.fail("BatchToSpaceND is supported only after a dilated convolution")
    ctx.alias(ctx.op.outputs[0], ctx.input(0))


@handler("DepthwiseConv2dNative", ir="conv2d")
def depthwise_conv2d(ctx) -> None:
    """A depthwise conv is a grouped conv with groups = in_channels; the kernel
    [H, W, C, M] is stored as the equivalent HWIO kernel [H, W, 1, C * M]."""
    _check_nhwc(ctx)
    height, width, channels, multiplier = ctx.input_info(1).shape
    kernel = ctx.weight(1, transforms=[("reshape", (height, width, 1, channels * multiplier))])
    _emit_conv(ctx, channels, kernel)


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
