"""Embedding lookups: a gather of whole rows from a weight table (Keras `Embedding`,
`tf.nn.embedding_lookup`), and one-hot rows of ids (TF1 BERT's token types)."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.gather import gather_tensor
from codegen.frontends.tensorflow.handlers.sizes import gather_of_sizes


@handler("GatherV2", "ResourceGather", "Gather", ir="embedding")  # (Gather: TF1, axis 0)
def gather(ctx) -> None:
    """table[ids]: rows of a variable or constant, picked by integer ids; shape[i] of a
    shape vector (sizes.py); any other gather (run-time params, constant ids, another axis,
    batch dims) is gather.py's."""
    if ctx.op.type == "GatherV2" and ctx.is_size(0):
        return gather_of_sizes(ctx)
    axis = int(ctx.const(2).reshape(-1)[0]) if ctx.op.type == "GatherV2" else 0
    rank = ctx.output_info(0).rank - ctx.input_info(1).rank + 1  # the table's
    if (ctx.kind(0) not in ("weight", "variable", "constant") or ctx.kind(1) == "constant"
            or axis != 0 or ctx.attr("batch_dims", 0) != 0 or rank != 2):
        if ctx.op.type == "ResourceGather":
            ctx.fail("only rows of a 2-D variable (axis 0, no batch dims) are supported")
        gather_tensor(ctx)
        return
    ids = _unwrapped_ids(ctx)
    ctx.emit("embedding", [ctx.ref_of(ids) if ids is not None else ctx.input(1)],
             weights={"table": ctx.weight(0)})


def _unwrapped_ids(ctx):
    """The ids behind Keras 3's negative-index wrap `where(ids < 0, ids + rows, ids)`
    (ops.take), which nn.Embedding does not need: a negative id is out of range for it, as
    it is for a TF gather. None when the ids are not wrapped so."""
    select = ctx.op.inputs[1].op
    if select.type != "SelectV2" or select.inputs[0].op.type != "Less":
        return None
    less, wrapped, ids = select.inputs[0].op, select.inputs[1].op, select.inputs[2]
    rows = ctx.input_info(0).shape[0]
    if less.inputs[0] is not ids or ctx.kind_of(less.inputs[1]) != "constant" \
            or ctx.value_of(less.inputs[1]).reshape(-1).tolist() != [0]:
        return None
    if wrapped.type not in ("Add", "AddV2") or wrapped.inputs[0] is not ids \
            or ctx.kind_of(wrapped.inputs[1]) != "constant" \
            or ctx.value_of(wrapped.inputs[1]).reshape(-1).tolist() != [rows]:
        return None
    return ids


@handler("OneHot", ir="one_hot")
def one_hot(ctx) -> None:
    """tf.one_hot(ids, depth) on the last axis with 1 / 0 (BERT's token types, read by a
    matmul with their table: rewrites/one_hot_embedding.py makes that an nn.Embedding)."""
    on, off = (ctx.const(i).reshape(-1)[0].item() for i in (2, 3))
    axis, rank, dtype = ctx.attr("axis"), ctx.rank(0), ctx.output_info(0).dtype
    attrs = {"depth": int(ctx.const(1).reshape(-1)[0])}
    if (on, off) != (1, 0) or axis not in (-1, rank) or dtype != "float32":
        if rank is None:
            ctx.fail("OneHot of ids of unknown rank is not supported")
        # any axis, on / off values and dtype: a comparison with arange(depth)
        attrs.update(axis=rank if axis == -1 else axis, on=on, off=off, dtype=dtype)
    ctx.emit("one_hot", [ctx.input(0)], attrs=attrs)
