"""Keras hard_sigmoid, relu6(x + 3) / 6, and hard_swish, x * relu6(x + 3) / 6 (MobileNetV3)."""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import plus_constant


def hard_sigmoid_input(ctx, op):
    """x if op computes relu6(x + 3) / 6 (or * 1/6), as Keras writes hard_sigmoid."""
    if op.type not in ("RealDiv", "Mul"):
        return None
    relu6, scale = op.inputs
    if relu6.op.type != "Relu6" and op.type == "Mul":
        relu6, scale = scale, relu6
    if relu6.op.type != "Relu6" or ctx.kind_of(scale) != "constant":
        return None
    expected = 6.0 if op.type == "RealDiv" else 1 / 6
    value = ctx.value_of(scale)
    if value.size != 1 or abs(float(value.reshape(-1)[0]) - expected) > 1e-6:
        return None
    shifted = relu6.op.inputs[0].op
    if shifted.type not in ("Add", "AddV2"):
        return None
    return plus_constant(ctx, shifted, 3.0)


@rewrite("Mul")
def match_hard_swish(ctx) -> bool:
    """x * relu6(x + 3) / 6 (MobileNetV3): emit `hard_swish`."""
    if ctx.op.type != "Mul":
        return False
    for gate_index in (0, 1):
        gate, x = ctx.op.inputs[gate_index], ctx.op.inputs[1 - gate_index]
        if hard_sigmoid_input(ctx, gate.op) is x:
            ctx.emit("hard_swish", [ctx.ref_of(x)])
            return True
    return False


@rewrite("Mul", "RealDiv")
def match_hard_sigmoid(ctx) -> bool:
    """relu6(x + 3) / 6: emit `hard_sigmoid`."""
    x = hard_sigmoid_input(ctx, ctx.op)
    if x is None:
        return False
    ctx.emit("hard_sigmoid", [ctx.ref_of(x)])
    return True
