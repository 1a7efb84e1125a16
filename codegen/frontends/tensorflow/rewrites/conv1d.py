"""Keras' 1-D layers as TF runs them: ExpandDims [N, T, C] -> [N, 1, T, C], one or two 2-D ops
(Conv2D; DepthwiseConv2dNative -> Conv2D for SeparableConv1D; MaxPool; AvgPool;
Conv2DBackpropInput for Conv1DTranspose), Squeeze back to [N, T, C]; a dilated conv with
SpaceToBatchND before the ExpandDims and BatchToSpaceND after the Squeeze. The whole run
becomes conv1d / max_pool1d / avg_pool1d / conv_transpose1d nodes on the sequence, anchored
at the op that ends it (the 2-D nodes the handlers made on the way are pruned)."""

from __future__ import annotations

from codegen.frontends.tensorflow.context import tensor_info
from codegen.frontends.tensorflow.handlers.conv import single_consumer, transpose_crop
from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.ir.graph import TensorInfo

LAYERS = ("Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "Conv2DBackpropInput")
POOLS = {"MaxPool": "max_pool1d", "AvgPool": "avg_pool1d"}


def _data(op):
    return op.inputs[2] if op.type == "Conv2DBackpropInput" else op.inputs[0]


def _chain(squeeze) -> tuple[list, object] | None:
    """(the 2-D ops from first to last, the ExpandDims before them), or None."""
    if squeeze.type != "Squeeze" or [int(a) % 4 for a in squeeze.get_attr("squeeze_dims")] != [1]:
        return None
    chain, op = [], squeeze.inputs[0].op
    while op.type in LAYERS and len(chain) < 2:
        chain.insert(0, op)
        op = _data(op).op
        readers = [c for c in op.outputs[0].consumers() if c.type != "Shape"]  # sizes only
        if readers != [chain[0]]:
            return None
    if (not chain or op.type != "ExpandDims" or op.inputs[0].shape.rank != 3
            or op.outputs[0].shape.rank != 4 or op.outputs[0].shape.as_list()[1] != 1):
        return None
    return chain, op


@rewrite("Squeeze", "BatchToSpaceND")
def match_1d(ctx) -> bool:
    end = ctx.op
    squeeze = end.inputs[0].op if end.type == "BatchToSpaceND" else end
    if end.type == "Squeeze" and getattr(single_consumer(end.outputs[0]), "type", "") == "BatchToSpaceND":
        return False  # the BatchToSpaceND after it ends the pattern
    found = _chain(squeeze)
    if found is None:
        return False
    chain, expand = found
    source, dilation, padding = expand.inputs[0], None, None
    if end.type == "BatchToSpaceND":
        if source.op.type != "SpaceToBatchND" or len(chain) != 1 or chain[0].type != "Conv2D":
            ctx.fail("SpaceToBatchND -> conv -> BatchToSpaceND is the only supported use")
        dilation, padding = _dilation(ctx, source.op, end)
        source = source.op.inputs[0]
    ref = ctx.ref_of(source)
    for position, op in enumerate(chain):
        # the last node stands for the op that ends the run, whose values ([N, T, C]) it has
        last = position == len(chain) - 1
        info = tensor_info(end.outputs[0]) if last else _drop_axis1(tensor_info(op.outputs[0]))
        ref = _emit(ctx.of(op), ctx if last else ctx.of(op), ref, info,
                    dilation if position == 0 else None, padding if position == 0 else None)
    return True


def _drop_axis1(info: TensorInfo) -> TensorInfo:
    return TensorInfo([info.shape[0], *info.shape[2:]], info.dtype)


def _emit(ctx, emitter, ref: str, info: TensorInfo, dilation, padding) -> str:
    """One 1-D node for the 2-D op of `ctx`, emitted by `emitter` (named as its op) in the
    op's scope."""
    op = ctx.op

    def emit(ir_op: str, **kwargs) -> str:
        return emitter.emit(ir_op, [ref], outputs=[info], scope=ctx.scope, **kwargs)

    strides = [int(op.get_attr("strides")[2])]
    if op.type in POOLS:
        return emit(POOLS[op.type], attrs={"kernel_size": [int(op.get_attr("ksize")[2])],
                                           "strides": strides,
                                           "padding": op.get_attr("padding").decode()})
    _, k, first, second = ctx.input_info(1).shape
    dilations = dilation or [int(op.get_attr("dilations")[2])]
    if op.type == "Conv2DBackpropInput":
        if op.get_attr("padding").decode() not in ("SAME", "VALID"):
            ctx.fail("a transposed conv's padding must be SAME or VALID")
        crop = transpose_crop(ctx, [2], [k], strides, dilations)
        return emit("conv_transpose1d",
                    attrs={"strides": strides, "dilations": dilations, "crop": crop},
                    weights={"kernel": ctx.weight(1, transforms=[("reshape", (k, first, second))])})
    if op.type == "DepthwiseConv2dNative":  # [1, k, C, M] -> the grouped kernel [k, 1, C * M]
        groups, shape = first, (k, 1, first * second)
    else:
        groups, shape = (ctx.input_info(0).shape[3] or first) // first, (k, first, second)
    pad = op.get_attr("padding").decode()
    if pad == "EXPLICIT":
        pad = [list(op.get_attr("explicit_paddings")[4:6])]
    return emit("conv1d", attrs={"strides": strides, "dilations": dilations,
                                 "padding": padding or pad, "groups": groups},
                weights={"kernel": ctx.weight(1, transforms=[("reshape", shape)])})


def _dilation(ctx, space_to_batch, batch_to_space) -> tuple[list[int], list[list[int]]]:
    """The dilation and padding of a SpaceToBatchND -> conv (VALID) -> BatchToSpaceND run:
    padding = paddings - crops, which TF computes from the length at run time (the extra pad
    that makes the length a multiple of the block is cropped again); read at two lengths."""
    block = [int(v) for v in ctx.value_of(space_to_batch.inputs[1]).reshape(-1)]
    runs = ctx.sample_run([space_to_batch.inputs[2], batch_to_space.inputs[2]]) or []
    pads = {tuple(int(p) - int(c) for p, c in zip(paddings.reshape(-1), crops.reshape(-1)))
            for paddings, crops in runs}
    if len(block) != 1 or len(pads) != 1 or min(next(iter(pads))) < 0:
        ctx.fail("SpaceToBatchND -> conv -> BatchToSpaceND whose padding depends on the length")
    before, after = pads.pop()
    return block, [[before, after]]
