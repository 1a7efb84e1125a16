"""Swish / SiLU written as x * sigmoid(x) (or x * sigmoid(1.0 * x), as Keras writes it)."""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite


@rewrite("Mul")
def match_swish(ctx) -> bool:
    """x * sigmoid(x), or x * sigmoid(1.0 * x) as Keras writes it: emit `swish`."""
    if ctx.op.type != "Mul":
        return False
    for gate_index in (0, 1):
        gate, x = ctx.op.inputs[gate_index], ctx.op.inputs[1 - gate_index]
        if gate.op.type != "Sigmoid":
            continue
        argument = gate.op.inputs[0]
        if argument.op.type == "Mul" and _is_one_times(ctx, argument.op, x):
            argument = x
        if argument is x:
            ctx.emit("swish", [ctx.input(1 - gate_index)])
            return True
    return False


def _is_one_times(ctx, op, x) -> bool:
    a, b = op.inputs
    other = b if a is x else a if b is x else None
    if other is None or ctx.kind_of(other) != "constant":
        return False
    value = ctx.value_of(other)
    return value.size == 1 and float(value.reshape(-1)[0]) == 1.0
