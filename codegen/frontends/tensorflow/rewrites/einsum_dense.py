"""Keras 3 EinsumDense with a bias (MultiHeadAttention's query/key/value projections):
einsum(x, W) + b, one `linear` with its bias over the flattened heads; with known sizes
Keras writes the einsum as reshapes around x @ W (ViT): the same linear."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.einsum import dense_form, emit_dense
from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.ir.graph import TensorInfo


@rewrite("Add", "AddV2")
def match_einsum_dense(ctx) -> bool:
    """This Add is einsum(x, W) + b with b a weight of the einsum's output's trailing shape."""
    for index in (0, 1):
        einsum, bias = ctx.op.inputs[index].op, ctx.op.inputs[1 - index]
        if einsum.type != "Einsum" or len(einsum.inputs) != 2 or dense_form(ctx, einsum) is None:
            continue
        if ctx.kind_of(bias) not in ("weight", "constant") or bias.shape.rank is None:
            continue
        out = einsum.outputs[0].shape.as_list()
        trailing = 2 if dense_form(ctx, einsum)[0] == "split" else 1
        if bias.shape.as_list() != out[-trailing:] or out != ctx.op.outputs[0].shape.as_list():
            continue
        emit_dense(ctx, einsum, bias=1 - index)
        return True
    return False


def _matmul_weight(ctx, tensor):
    """The BatchMatMulV2 behind `tensor` when it is x @ W with W a 2-D weight, else None."""
    op = tensor.op
    if op.type not in ("BatchMatMulV2", "BatchMatMul") or op.get_attr("adj_x") \
            or op.get_attr("adj_y") or op.inputs[1].shape.rank != 2:
        return None
    return op if ctx.kind_of(op.inputs[1]) in ("weight", "constant") else None


@rewrite("Add", "AddV2")
def match_matmul_dense(ctx) -> bool:
    """EinsumDense into heads as Keras writes it when the sizes are known:
    reshape(x @ reshape(W, [C, H * D]), [-1, T, H, D]) + b: a linear, then unflatten."""
    for index in (0, 1):
        split, bias = ctx.op.inputs[index], ctx.op.inputs[1 - index]
        if split.op.type != "Reshape" or ctx.kind_of(bias) not in ("weight", "constant"):
            continue
        matmul = _matmul_weight(ctx, split.op.inputs[0])
        if matmul is None or split.shape.rank != 4 or matmul.inputs[0].shape.rank != 3:
            continue
        out, x = split.shape.as_list(), matmul.inputs[0].shape.as_list()
        fan_out = matmul.inputs[1].shape.as_list()[1]
        if (out[1] != x[1] or None in out[1:] or out[2] * out[3] != fan_out
                or bias.shape.as_list() != out[2:] or ctx.op.outputs[0].shape.as_list() != out):
            continue
        weights = {"kernel": ctx.of(matmul).weight(1),
                   "bias": ctx.weight(1 - index, transforms=[("reshape", (fan_out,))])}
        flat = ctx.emit("linear", [ctx.ref_of(matmul.inputs[0])], weights=weights,
                        suffix="linear", outputs=[_info(ctx, [*out[:2], fan_out])])
        ctx.emit("unflatten", [flat], attrs={"axis": 2, "sizes": out[2:]})
        return True
    return False


@rewrite("BiasAdd")
def match_matmul_merge(ctx) -> bool:
    """EinsumDense out of heads with known sizes: reshape(h, [-1, T, H * D]) @ W + b on
    h [N, T, H, D]: flatten(2), then a linear with its bias."""
    matmul = _matmul_weight(ctx, ctx.op.inputs[0])
    merged = None if matmul is None else matmul.inputs[0]
    if merged is None or merged.op.type != "Reshape" or merged.shape.rank != 3:
        return False
    h = merged.op.inputs[0]
    shape = h.shape.as_list() if h.shape.rank == 4 else [None] * 3
    if None in shape[1:] or merged.shape.as_list()[1:] != [shape[1], shape[2] * shape[3]]:
        return False
    flat = ctx.emit("flatten", [ctx.ref_of(h)], attrs={"axis": 2}, suffix="flatten",
                    outputs=[_info(ctx, merged.shape.as_list())])
    ctx.emit("linear", [flat], weights={"kernel": ctx.of(matmul).weight(1),
                                        "bias": ctx.weight(1)})
    return True


def _info(ctx, shape) -> TensorInfo:
    return TensorInfo(list(shape), ctx.output_info(0).dtype)
