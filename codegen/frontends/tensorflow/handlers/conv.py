"""Convolutions and fully-connected layers: Conv2D, DepthwiseConv2dNative, Conv3D, the
transposed convs (Conv2DBackpropInput, Conv3DBackpropInputV2), BiasAdd, MatMul, and the two
halves of a dilated conv (SpaceToBatchND/BatchToSpaceND: the rewrite rewrites/dilated_conv.py
turns the three ops into one conv2d). Keras' 1-D layers (ExpandDims -> Conv2D -> Squeeze) are
rewrites/conv1d.py."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler, space_batch
from codegen.frontends.tensorflow.handlers.matrix import matmul_tensors


def _check_nhwc(ctx) -> None:
    if ctx.attr("data_format", "NHWC") not in ("NHWC", "NDHWC", "N...C"):
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


@handler("SpaceToBatchND", ir="conv2d", static=(1, 2))
def space_to_batch(ctx) -> None:
    """Only as the first half of a dilated conv (rewrites/dilated_conv.py, rewrites/conv1d.py
    where an ExpandDims comes between): the conv reads our input directly."""
    conv = single_consumer(ctx.op.outputs[0])
    if conv is not None and conv.type == "ExpandDims":
        conv = single_consumer(conv.outputs[0])
    if conv is None or conv.type not in ("Conv2D", "DepthwiseConv2dNative"):
        space_batch.space_to_batch(ctx)  # on its own: a pad and a reshape/permute
        return
    ctx.alias(ctx.op.outputs[0], ctx.input(0))  # never read: see the rewrite


@handler("BatchToSpaceND", ir="conv2d", static=(1, 2))
def batch_to_space(ctx) -> None:
    """The end of a dilated conv: the conv node already has our output shape."""
    conv = ctx.op.inputs[0].op
    if conv.type not in ("Conv2D", "DepthwiseConv2dNative") or conv.inputs[0].op.type != "SpaceToBatchND":
        space_batch.batch_to_space(ctx)  # on its own: a reshape/permute and a crop
        return
    ctx.alias(ctx.op.outputs[0], ctx.input(0))


@handler("Conv3D", ir="conv3d")
def conv3d(ctx) -> None:
    _check_nhwc(ctx)  # NDHWC
    kernel_in = ctx.input_info(1).shape[3]
    ctx.emit("conv3d", [ctx.input(0)],
             attrs={"strides": list(ctx.attr("strides")[1:4]),
                    "dilations": list(ctx.attr("dilations")[1:4]),
                    "padding": ctx.attr("padding"),
                    "groups": ctx.input_info(0).shape[4] // kernel_in if kernel_in else 1},
             weights={"kernel": ctx.weight(1)})


@handler("Conv2DBackpropInput", ir="conv_transpose2d", static=(0,))
def conv_transpose2d(ctx) -> None:
    conv_transpose(ctx)


@handler("Conv3DBackpropInputV2", ir="conv_transpose3d", static=(0,))
def conv_transpose3d(ctx) -> None:
    conv_transpose(ctx)


def conv_transpose(ctx) -> None:
    """tf.nn.conv2d_transpose / conv3d_transpose (Keras Conv2DTranspose, Conv3DTranspose):
    the gradient of a conv whose input size (input 0) TF computes from ours."""
    _check_nhwc(ctx)
    spatial = ctx.rank(2) - 2
    if ctx.attr("padding") not in ("SAME", "VALID"):
        ctx.fail(f"padding {ctx.attr('padding')} of a transposed conv is not supported")
    strides = list(ctx.attr("strides")[1:-1])
    dilations = list(ctx.attr("dilations")[1:-1])
    kernel = ctx.input_info(1).shape[:spatial]
    crop = transpose_crop(ctx, list(range(1, spatial + 1)), kernel, strides, dilations)
    ctx.emit(f"conv_transpose{spatial}d", [ctx.input(2)],
             attrs={"strides": strides, "dilations": dilations, "crop": crop},
             weights={"kernel": ctx.weight(1)})


def transpose_crop(ctx, axes: list[int], kernel: list[int], strides: list[int],
                   dilations: list[int]) -> list[list[int]]:
    """[[before, after]] per spatial axis: what TF keeps of the full transposed output
    ((size - 1) * stride + extent) is out = size * stride + offset, starting at TF's 'SAME'
    pad of the forward conv (the smaller half); after < 0 is output the full one lacks
    (PyTorch's output_padding). The offset is read from TF's own output size at two input
    sizes, so it holds for every size."""
    sizes_tensor, x = ctx.op.inputs[0], ctx.op.inputs[2]
    shape = x.shape.as_list()
    if ctx.is_const(0) and None not in shape[1:]:
        runs = [(ctx.const(0), shape)]
    else:  # our input at two sizes (each unknown size 5, then 8), else the graph's inputs
        runs = []
        for sample in (5, 8):
            given = [sample if size is None else size for size in shape]
            fed = ctx.run_fed([sizes_tensor], {x: np.zeros(given, x.dtype.as_numpy_dtype)})
            runs.append((fed[0], given) if fed else None)
        if None in runs:
            runs = [(values[0], values[1].tolist())
                    for values in ctx.sample_run([sizes_tensor], shapes_of=[x]) or []]
    if not runs:
        ctx.fail("the output size of a transposed conv could not be read from the graph")
    crop = []
    for axis, k, s, d in zip(axes, kernel, strides, dilations):
        offsets = {int(sizes.reshape(-1)[axis]) - given[axis] * s for sizes, given in runs}
        if len(offsets) != 1:
            ctx.fail("the output size of a transposed conv is not input size * stride + a constant")
        excess = (k - 1) * d + 1 - s - offsets.pop()
        before = excess // 2 if ctx.attr("padding") == "SAME" else 0
        if excess >= 0:
            crop.append([before, excess - before])
        elif -excess < max(s, d):
            crop.append([0, excess])
        else:
            ctx.fail(f"a transposed conv's output is {-excess} longer than its full output")
    return crop


@handler("BiasAdd", ir="bias_add")
def bias_add(ctx) -> None:
    _check_nhwc(ctx)
    ctx.emit("bias_add", [ctx.input(0)], weights={"bias": ctx.weight(1)})


@handler("MatMul", ir="linear")
def matmul(ctx) -> None:
    if ctx.attr("transpose_a") or ctx.kind(1) not in ("weight", "constant") \
            or ctx.kind(0) == "constant":
        matmul_tensors(ctx)  # a @ b of two tensors
        return
    transforms = [("transpose", (1, 0))] if ctx.attr("transpose_b") else []
    ctx.emit("linear", [ctx.input(0)], weights={"kernel": ctx.weight(1, transforms=transforms)})
