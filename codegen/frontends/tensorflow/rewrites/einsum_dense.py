"""Keras 3 EinsumDense with a bias (MultiHeadAttention's query/key/value projections):
einsum(x, W) + b, one `linear` with its bias over the flattened heads."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.einsum import dense_form, emit_dense
from codegen.frontends.tensorflow.rewrites import rewrite


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
