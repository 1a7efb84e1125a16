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
