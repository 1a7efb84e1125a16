"""Activations: Relu, Relu6, Sigmoid, Tanh, Elu, Softmax."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler

UNARY = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu"}


def _unary(ctx) -> None:
    ctx.emit(UNARY[ctx.op.type], [ctx.input(0)])


for _tf_op, _ir_op in UNARY.items():
    handler(_tf_op, ir=_ir_op)(_unary)


@handler("Softmax", ir="softmax")
def softmax(ctx) -> None:
    ctx.emit("softmax", [ctx.input(0)], attrs={"axis": ctx.rank(0) - 1})


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
    if other is None or ctx.converter.kind(other) != "constant":
        return False
    value = ctx.converter.fold(other)
    return value.size == 1 and float(value.reshape(-1)[0]) == 1.0


def match_gelu(ctx) -> bool:
    """(0.5 * x) * erfc(-x * 0.7071...) as tf.nn.gelu writes it: emit `gelu`."""
    if ctx.op.type != "Mul":
        return False
    for half_index in (0, 1):
        half, tail = ctx.op.inputs[half_index].op, ctx.op.inputs[1 - half_index].op
        if half.type != "Mul" or tail.type != "Erfc" or tail.inputs[0].op.type != "Mul":
            continue
        x = _times_constant(ctx, half, 0.5)
        scaled = _times_constant(ctx, tail.inputs[0].op, 2 ** -0.5)
        if x is not None and scaled is not None and scaled.op.type == "Neg" \
                and scaled.op.inputs[0] is x:
            ctx.emit("gelu", [ctx.converter.ref_of(x)], attrs={"approximate": "none"})
            return True
    return False


def _times_constant(ctx, op, expected: float):
    """The tensor t if op is t * c (either order) with c == expected (float32), else None."""
    for index in (0, 1):
        constant, other = op.inputs[index], op.inputs[1 - index]
        if ctx.converter.kind(constant) == "constant" and ctx.converter.kind(other) != "constant":
            value = ctx.converter.fold(constant)
            if value.size == 1 and abs(float(value.reshape(-1)[0]) - expected) < 1e-6:
                return other
    return None
