"""Elementwise binary ops: Add, AddV2, Sub, Mul, RealDiv, Maximum, Minimum."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.activation import (
    match_gelu,
    match_hard_sigmoid,
    match_hard_swish,
    match_swish,
)
from codegen.frontends.tensorflow.handlers.norm import match_batch_norm, match_layer_norm

BINARY = {
    "Add": "add",
    "AddV2": "add",
    "Sub": "sub",
    "Mul": "mul",
    "RealDiv": "div",
    "Maximum": "maximum",
    "Minimum": "minimum",
}


def _binary(ctx) -> None:
    # layers that TF writes out as arithmetic
    patterns = (match_batch_norm, match_layer_norm, match_swish, match_gelu, match_hard_swish,
                match_hard_sigmoid)
    if any(match(ctx) for match in patterns):
        return
    ctx.emit(BINARY[ctx.op.type], [ctx.input_or_scalar(0), ctx.input_or_scalar(1)])


for _tf_op, _ir_op in BINARY.items():
    handler(_tf_op, ir=_ir_op)(_binary)
