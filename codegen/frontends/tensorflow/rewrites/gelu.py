"""GELU as tf.nn.gelu writes it: (0.5 * x) * erfc(-x * 0.7071...)."""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import times_constant


@rewrite("Mul")
def match_gelu(ctx) -> bool:
    """(0.5 * x) * erfc(-x * 0.7071...) as tf.nn.gelu writes it: emit `gelu`."""
    if ctx.op.type != "Mul":
        return False
    for half_index in (0, 1):
        half, tail = ctx.op.inputs[half_index].op, ctx.op.inputs[1 - half_index].op
        if half.type != "Mul" or tail.type != "Erfc" or tail.inputs[0].op.type != "Mul":
            continue
        x = times_constant(ctx, half, 0.5)
        scaled = times_constant(ctx, tail.inputs[0].op, 2 ** -0.5)
        if x is not None and scaled is not None and scaled.op.type == "Neg" \
                and scaled.op.inputs[0] is x:
            ctx.emit("gelu", [ctx.ref_of(x)], attrs={"approximate": "none"})
            return True
    return False
