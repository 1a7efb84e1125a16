"""Dilated convolutions as TF runs a dilated 'SAME' conv: SpaceToBatchND -> conv (VALID) ->
BatchToSpaceND. The three are one conv2d with dilation = the block shape and padding =
paddings - crops. The rewrite anchors at the conv; the SpaceToBatchND / BatchToSpaceND
handlers (handlers/conv.py) only let their outputs stand for the conv's input and output."""

from __future__ import annotations

from codegen.frontends.tensorflow.context import tensor_info
from codegen.frontends.tensorflow.handlers.conv import conv_weights, emit_conv, single_consumer
from codegen.frontends.tensorflow.rewrites import rewrite


@rewrite("Conv2D", "DepthwiseConv2dNative")
def match_dilated_conv(ctx) -> bool:
    before = ctx.op.inputs[0].op
    if before.type != "SpaceToBatchND":
        return False
    after = single_consumer(ctx.op.outputs[0])
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
    emit_conv(ctx, *conv_weights(ctx), source=ctx.ref_of(before.inputs[0]),
              dilations=[int(b) for b in block], padding=padding,
              outputs=[tensor_info(after.outputs[0])])
    return True
