"""TF ops that are another op in a different form: AddN (a sum of n tensors), BiasAddV1
(BiasAdd), Concat (ConcatV2 with the axis first), MaxPoolV2 (MaxPool with its window as
inputs), DivNoNan (a / b, 0 where b is 0), MatrixDeterminant (torch.linalg.det), and two
written with other IR ops: AdjustContrastv2 and SoftmaxCrossEntropyWithLogits.
EnsureShape, a run-time shape check, is passed through like Identity (converter.py)."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.conv import bias_add
from codegen.frontends.tensorflow.handlers.pool import pool_with
from codegen.ir.graph import TensorInfo


@handler("AddN", ir="add")
def add_n(ctx) -> None:
    """a + b + c: one add per extra term, the last standing for the op."""
    total = ctx.input(0)
    count = len(ctx.op.inputs)
    if count == 1:
        ctx.emit("identity", [total])
        return
    for index in range(1, count):
        last = index == count - 1
        total = ctx.emit("add", [total, ctx.input(index)], suffix="" if last else f"add_{index}")


handler("BiasAddV1", ir="bias_add")(bias_add)


@handler("Concat", ir="concat", static=(0,))
def concat_axis_first(ctx) -> None:
    axis = int(ctx.const(0)) % ctx.rank(1)
    ctx.emit("concat", [ctx.input(i) for i in range(1, len(ctx.op.inputs))], attrs={"axis": axis})


@handler("MaxPoolV2", ir="max_pool2d", static=(1, 2))
def max_pool_v2(ctx) -> None:
    pool_with(ctx, "max_pool2d", [int(k) for k in ctx.const(1)], [int(s) for s in ctx.const(2)])


@handler("DivNoNan", ir="where")
def div_no_nan(ctx) -> None:
    """torch.where(b == 0, 0, a / b): TF gives 0 wherever b is 0, whatever a is."""
    a, b = ctx.input(0), ctx.input(1)
    info = ctx.output_info(0)
    zero = ctx.emit("scalar", [], attrs={"value": 0.0}, suffix="zero",
                    outputs=[TensorInfo([], info.dtype)])
    is_zero = ctx.emit("equal", [b, zero], suffix="is_zero",
                       outputs=[TensorInfo(ctx.input_info(1).shape, "bool")])
    quotient = ctx.emit("div", [a, b], suffix="quotient")
    ctx.emit("where", [is_zero, zero, quotient])


@handler("MatrixDeterminant", ir="det")
def determinant(ctx) -> None:
    ctx.emit("det", [ctx.input(0)])


@handler("AdjustContrastv2", ir="mean", static=(1,))
def adjust_contrast(ctx) -> None:
    """tf.image.adjust_contrast: (x - mean) * factor + mean, the mean over each image's
    height and width, per channel."""
    factor = float(ctx.const(1).reshape(-1)[0])
    x, info = ctx.input(0), ctx.output_info(0)
    rank = len(info.shape)
    spatial = list(range(rank - 3, rank - 1))  # [..., H, W, C]
    mean_shape = [1 if axis in spatial else size for axis, size in enumerate(info.shape)]
    mean = ctx.emit("mean", [x], attrs={"axes": spatial, "keepdims": True}, suffix="mean",
                    outputs=[TensorInfo(mean_shape, info.dtype)])
    centred = ctx.emit("sub", [x, mean], suffix="centred")
    scale = ctx.emit("scalar", [], attrs={"value": factor}, suffix="factor",
                     outputs=[TensorInfo([], info.dtype)])
    scaled = ctx.emit("mul", [centred, scale], suffix="scaled")
    ctx.emit("add", [scaled, mean])


@handler("SoftmaxCrossEntropyWithLogits", ir="log_softmax")
def softmax_cross_entropy(ctx) -> None:
    """The loss per row, -sum(labels * log_softmax(logits)), and its gradient with respect to
    the logits, softmax(logits) - labels (TF's second output)."""
    logits, labels = ctx.input(0), ctx.input(1)
    info, dtype = ctx.input_info(0), ctx.output_info(0).dtype
    rows = info.shape[:-1]
    log_probs = ctx.emit("log_softmax", [logits], attrs={"axis": len(info.shape) - 1},
                         suffix="log_probs", outputs=[info])
    weighted = ctx.emit("mul", [labels, log_probs], suffix="weighted", outputs=[info])
    total = ctx.emit("reduce_sum", [weighted], attrs={"axes": [len(info.shape) - 1],
                                                      "keepdims": False},
                     suffix="total", outputs=[TensorInfo(rows, dtype)])
    loss = ctx.emit("neg", [total], suffix="loss", outputs=[TensorInfo(rows, dtype)])
    probs = ctx.emit("softmax", [logits], attrs={"axis": len(info.shape) - 1}, suffix="probs",
                     outputs=[info])
    backprop = ctx.emit("sub", [probs, labels], suffix="backprop", outputs=[info])
    ctx.alias(ctx.op.outputs[0], loss)
    ctx.alias(ctx.op.outputs[1], backprop)


@handler("InvertPermutation", ir="invert_permutation")
def invert_permutation(ctx) -> None:
    ctx.emit("invert_permutation", [ctx.input(0)])


@handler("ReverseSequence", ir="reverse_sequence")
def reverse_sequence(ctx) -> None:
    """In each row i along batch_dim, the first lengths[i] entries along seq_dim reversed."""
    rank = ctx.rank(0)
    if rank is None:
        ctx.fail("ReverseSequence of unknown rank is not supported")
    ctx.emit("reverse_sequence", [ctx.input(0), ctx.input(1)],
             attrs={"seq_dim": ctx.attr("seq_dim") % rank,
                    "batch_dim": ctx.attr("batch_dim", 0) % rank})


@handler("Unique", "UniqueWithCounts", ir="unique")
def unique(ctx) -> None:
    """The distinct values of a vector in the order they first appear, each entry's position
    among them and (UniqueWithCounts) how often each appears, as TF gives them."""
    if ctx.rank(0) != 1:
        ctx.fail("Unique of a tensor that is not a vector is not supported")
    outputs = [ctx.output_info(i) for i in range(len(ctx.op.outputs))]
    ctx.emit("unique", [ctx.input(0)], attrs={"counts": len(outputs) == 3}, outputs=outputs)
