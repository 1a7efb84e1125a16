"""Activations: Relu, Relu6, Sigmoid, Tanh, Elu, Selu, Softmax."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler

UNARY = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu",
         "Selu": "selu"}


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


def _hard_sigmoid_input(ctx, op):
    """x if op computes relu6(x + 3) / 6 (or * 1/6), as Keras writes hard_sigmoid."""
    if op.type not in ("RealDiv", "Mul"):
        return None
    relu6, scale = op.inputs
    if relu6.op.type != "Relu6" and op.type == "Mul":
        relu6, scale = scale, relu6
    if relu6.op.type != "Relu6" or ctx.converter.kind(scale) != "constant":
        return None
    expected = 6.0 if op.type == "RealDiv" else 1 / 6
    value = ctx.converter.fold(scale)
    if value.size != 1 or abs(float(value.reshape(-1)[0]) - expected) > 1e-6:
        return None
    shifted = relu6.op.inputs[0].op
    if shifted.type not in ("Add", "AddV2"):
        return None
    return _times_constant_sum(ctx, shifted, 3.0)


def _times_constant_sum(ctx, op, expected: float):
    """t if op is t + c (either order) with c == expected, else None."""
    for index in (0, 1):
        constant, other = op.inputs[index], op.inputs[1 - index]
        if ctx.converter.kind(constant) == "constant" and ctx.converter.kind(other) != "constant":
            value = ctx.converter.fold(constant)
            if value.size == 1 and float(value.reshape(-1)[0]) == expected:
                return other
    return None


def match_hard_sigmoid(ctx) -> bool:
    """relu6(x + 3) / 6: emit `hard_sigmoid`."""
    x = _hard_sigmoid_input(ctx, ctx.op)
    if x is None:
        return False
    ctx.emit("hard_sigmoid", [ctx.converter.ref_of(x)])
    return True


def match_hard_swish(ctx) -> bool:
    """x * relu6(x + 3) / 6 (MobileNetV3): emit `hard_swish`."""
    if ctx.op.type != "Mul":
        return False
    for gate_index in (0, 1):
        gate, x = ctx.op.inputs[gate_index], ctx.op.inputs[1 - gate_index]
        if _hard_sigmoid_input(ctx, gate.op) is x:
            ctx.emit("hard_swish", [ctx.converter.ref_of(x)])
            return True
    return False
