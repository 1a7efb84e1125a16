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


def _binary(ctx) -> None:
    compare = ctx.op.type == "NotEqual"  # `ids != 0`: an integer scalar is fine there
    ctx.emit(BINARY[ctx.op.type], [ctx.input_or_scalar(0, compare), ctx.input_or_scalar(1, compare)])


for _tf_op, _ir_op in BINARY.items():
    handler(_tf_op, ir=_ir_op)(_binary)
