"""Embedding lookups: a gather of whole rows from a weight table (Keras `Embedding`,
`tf.nn.embedding_lookup`)."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler


@handler("GatherV2", "ResourceGather", ir="embedding")
def gather(ctx) -> None:
    """table[ids]: rows of a variable or constant, picked by integer ids."""
    axis = int(ctx.const(2).reshape(-1)[0]) if ctx.op.type == "GatherV2" else 0
    if ctx.kind(0) not in ("weight", "variable", "constant") or ctx.kind(1) == "constant":
        ctx.fail("only a lookup of run-time ids in a variable or constant table is supported")
    rank = ctx.output_info(0).rank - ctx.input_info(1).rank + 1  # the table's
    if axis != 0 or ctx.attr("batch_dims", 0) != 0 or rank != 2:
        ctx.fail("only rows of a 2-D table (axis 0, no batch dims) are supported")
    ctx.emit("embedding", [ctx.input(1)], weights={"table": ctx.weight(0)})


def _wraps_negative_ids(op) -> bool:
    """where(ids < 0, ids + rows, ids): Keras 3's Embedding lets ids count from the end."""
    condition, wrapped, ids = op.inputs
    return (condition.op.type == "Less" and condition.op.inputs[0] is ids
            and wrapped.op.type in ("AddV2", "Add") and any(t is ids for t in wrapped.op.inputs)
            and all(reader.type == "GatherV2" for reader in op.outputs[0].consumers()))


@handler("SelectV2", ir="identity",
         static=lambda op: (0, 1) if _wraps_negative_ids(op) else ())
def select(ctx) -> None:
    """Keras 3's wrap of negative ids before an Embedding lookup: the ids as they are
    (nn.Embedding raises on a negative id rather than reading another row)."""
    if not _wraps_negative_ids(ctx.op):
        ctx.fail("only the wrap of negative ids before an embedding lookup is supported")
    ctx.alias(ctx.op.outputs[0], ctx.input(2))
