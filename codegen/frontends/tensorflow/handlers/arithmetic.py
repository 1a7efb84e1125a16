"""Elementwise binary ops: Add, AddV2, Sub, Mul, RealDiv, Maximum, Minimum, Atan2, FloorDiv,
FloorMod, Mod/TruncateMod, TruncateDiv, the comparisons and LogicalOr/LogicalXor; a Maximum /
Minimum with a number is x.clamp, and tf.clip_by_value's pair one x.clamp(lo, hi)."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.sizes import binary_of_sizes

BINARY = {
    "Add": "add",
    "AddV2": "add",
    "Sub": "sub",
    "Mul": "mul",
    "RealDiv": "div",
    "Maximum": "maximum",
    "Minimum": "minimum",
    "NotEqual": "not_equal",
    "Equal": "equal",
    "Greater": "greater",
    "GreaterEqual": "greater_equal",
    "LessEqual": "less_equal",
    "FloorDiv": "floor_div",  # x // y: floors integers and floats, as TF
    "FloorMod": "floor_mod",  # x % y: the sign of y, as TF
    "Mod": "fmod",  # TF's Mod truncates (C's %): torch.fmod
    "TruncateMod": "fmod",
    "TruncateDiv": "truncate_div",
    "Atan2": "atan2",
    "LogicalOr": "logical_or",
    "BitwiseAnd": "bitwise_and",
    "BitwiseOr": "bitwise_or",
    "BitwiseXor": "bitwise_xor",
    "LeftShift": "left_shift",
    "RightShift": "right_shift",
    "Xlogy": "xlogy",
}
TENSORS_ONLY = {"Atan2", "LogicalOr", "Xlogy"}  # torch.atan2 / logical_or / xlogy: no number
FLOATS_ONLY = {"Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum"}  # a number
# constant of these stays a buffer unless floating (their code predates integer scalars)


CLAMPS = {"Maximum": "min", "Minimum": "max"}  # max(x, 0.0) is x.clamp(min=0.0)


def _binary(ctx) -> None:
    if ctx.is_size(0) or ctx.is_size(1):  # seq_len - 1: Python arithmetic on sizes
        return binary_of_sizes(ctx, BINARY[ctx.op.type])
    if ctx.op.type in TENSORS_ONLY:
        ctx.emit(BINARY[ctx.op.type], [ctx.input(0), ctx.input(1)])
        return
    integers = ctx.op.type not in FLOATS_ONLY  # `ids != 0`: an integer scalar is fine there
    inputs = [ctx.input_or_scalar(0, integers), ctx.input_or_scalar(1, integers)]
    scalars = [ctx.ir_op(ref) == "scalar" for ref in inputs]
    if ctx.op.type in CLAMPS and scalars.count(True) == 1:  # torch.maximum takes no number
        index = scalars.index(False)
        bounds = {CLAMPS[ctx.op.type]: float(ctx.const(1 - index).reshape(-1)[0])}
        x, inner = inputs[index], _other_bound(ctx, ctx.op.inputs[index])
        merged = {**bounds, **inner[1]} if inner is not None else {}
        if merged and merged["min"] <= merged["max"]:  # (else TF's result is lo, torch's hi)
            x, bounds = inner[0], merged  # clip_by_value: x.clamp(lo, hi)
        ctx.emit("clamp", [x], attrs={key: bounds[key] for key in ("min", "max") if key in bounds})
        return
    ctx.emit(BINARY[ctx.op.type], inputs)


def _other_bound(ctx, tensor):
    """(x's ref, {"max": hi}) when `tensor` is Minimum(x, hi) of a number (or Maximum(x,
    lo)) that only this op reads: min then max of numbers is one clamp."""
    op = tensor.op
    if op.type != {"Maximum": "Minimum", "Minimum": "Maximum"}[ctx.op.type] or \
            len(tensor.consumers()) != 1:
        return None
    inner = ctx.of(op)
    numbers = [inner.kind(i) == "constant" and op.inputs[i].dtype.is_floating
               and op.inputs[i].shape.num_elements() == 1 for i in (0, 1)]
    if numbers.count(True) != 1 or op.inputs[numbers.index(False)].shape != op.outputs[0].shape:
        return None
    value = float(inner.const(numbers.index(True)).reshape(-1)[0])
    return ctx.ref_of(op.inputs[numbers.index(False)]), {CLAMPS[op.type]: value}


for _tf_op, _ir_op in BINARY.items():
    handler(_tf_op, ir=_ir_op)(_binary)


@handler("Div", ir="div")
def div(ctx) -> None:
    """TF's Div: RealDiv of floats, TruncateDiv of integers (C's /)."""
    floats = ctx.op.inputs[0].dtype.is_floating
    if ctx.is_size(0) or ctx.is_size(1):
        return binary_of_sizes(ctx, "div" if floats else "floor_div")
    inputs = [ctx.input_or_scalar(0, True), ctx.input_or_scalar(1, True)]
    ctx.emit("div" if floats else "truncate_div", inputs)


@handler("Select", ir="where")
def select(ctx) -> None:
    """tf.compat.v1.where(c, x, y): torch.where when c has x's shape (a vector c picks rows)."""
    if ctx.op.inputs[0].shape.rank != ctx.op.inputs[1].shape.rank:
        ctx.fail("Select with a condition of lower rank (picking rows) is not supported")
    ctx.emit("where", [ctx.input(0), ctx.input(1), ctx.input(2)])
