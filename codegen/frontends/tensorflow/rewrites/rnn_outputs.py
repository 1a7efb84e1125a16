"""How Keras reads a recurrent layer's outputs: the stacked time-major list transposed back
to batch first (return_sequences), or its last step (the output otherwise). Both are
outputs of the `lstm`/`gru`/`rnn` node itself: the sequence, and the last h."""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite

RNN_OPS = ("lstm", "gru", "rnn")


def _rnn_sequence(ctx, tensor) -> str | None:
    """The IR ref of a recognised RNN's batch-first outputs, if `tensor` stacks them."""
    if tensor.op.type != "TensorListStack":
        return None
    loop_output = tensor.op.inputs[0]
    if loop_output.op.type not in ("While", "StatelessWhile"):
        return None
    try:
        ref = ctx.ref_of(loop_output)
    except KeyError:
        return None
    return ref if ctx.ir_op(ref) in RNN_OPS and ref.endswith(":0") else None


@rewrite("Transpose")
def match_sequence(ctx) -> bool:
    """transpose(stack(outputs), [1, 0, 2]): the layer's sequence, as it is."""
    ref = _rnn_sequence(ctx, ctx.op.inputs[0])
    if ref is None or not ctx.is_const(1) or ctx.const(1).tolist() != [1, 0, 2]:
        return False
    ctx.alias(ctx.op.outputs[0], ref)
    return True


@rewrite("StridedSlice")
def match_last_step(ctx) -> bool:
    """stack(outputs)[-1]: the last step's output, which is the layer's last h."""
    ref = _rnn_sequence(ctx, ctx.op.inputs[0])
    if ref is None or not all(ctx.is_const(i) for i in (1, 2, 3)):
        return False
    begin, end, strides = (ctx.const(i).reshape(-1).tolist() for i in (1, 2, 3))
    if (begin, end, strides) != ([-1], [0], [1]) or ctx.attr("shrink_axis_mask") != 1 or any(
            ctx.attr(mask) for mask in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask")):
        return False
    ctx.alias(ctx.op.outputs[0], ref.rpartition(":")[0] + ":1")
    return True
