"""Elementwise binary ops: Add, AddV2, Sub, Mul, RealDiv, Maximum, Minimum."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler

BINARY = {
    "Add": "add",
    "AddV2": "add",
    "Sub": "sub",
    "Mul": "mul",
    "RealDiv": "div",
    "Maximum": "maximum",
    "Minimum": "minimum",
    "NotEqual": "not_equal",
}


CLAMPS = {"Maximum": "min", "Minimum": "max"}  # max(x, 0.0) is x.clamp(min=0.0)


def _binary(ctx) -> None:
    compare = ctx.op.type == "NotEqual"  # `ids != 0`: an integer scalar is fine there
    inputs = [ctx.input_or_scalar(0, compare), ctx.input_or_scalar(1, compare)]
    scalars = [ctx.ir_op(ref) == "scalar" for ref in inputs]
    if ctx.op.type in CLAMPS and scalars.count(True) == 1:  # torch.maximum takes no number
        bound = {CLAMPS[ctx.op.type]: float(ctx.const(scalars.index(True)).reshape(-1)[0])}
        ctx.emit("clamp", [inputs[scalars.index(False)]], attrs=bound)
        return
    ctx.emit(BINARY[ctx.op.type], inputs)


for _tf_op, _ir_op in BINARY.items():
    handler(_tf_op, ir=_ir_op)(_binary)
