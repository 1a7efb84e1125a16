"""GELU as tf.nn.gelu writes it: (0.5 * x) * erfc(-x * 0.7071...), as BERT's modeling.py
writes it: x * 0.5 * (1 + erf(x / sqrt(2))) (the three factors grouped any way), and its
tanh approximation: (0.5 * x) * (1 + tanh(0.7978... * (x + 0.044715 * x ** 3)))."""

from __future__ import annotations

import math

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import plus_constant, same_number, times_constant


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


@rewrite("Mul")
def match_gelu_tanh(ctx) -> bool:
    """(0.5 * x) * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x ** 3))): emit `gelu` (tanh)."""
    if ctx.op.type != "Mul":
        return False
    for half_index in (0, 1):
        half, tail = ctx.op.inputs[half_index].op, ctx.op.inputs[1 - half_index].op
        if half.type != "Mul" or tail.type not in ("Add", "AddV2"):
            continue
        x, tanh = times_constant(ctx, half, 0.5), plus_constant(ctx, tail, 1.0)
        if x is None or tanh is None or tanh.op.type != "Tanh":
            continue
        if tanh.op.inputs[0].op.type != "Mul":
            continue
        inner = times_constant(ctx, tanh.op.inputs[0].op, math.sqrt(2 / math.pi))
        if inner is not None and inner.op.type in ("Add", "AddV2") and _plus_cube(ctx, inner.op, x):
            ctx.emit("gelu", [ctx.ref_of(x)], attrs={"approximate": "tanh"})
            return True
    return False


def _plus_cube(ctx, add, x) -> bool:
    """Whether `add` is x + 0.044715 * x ** 3 (either order)."""
    for index in (0, 1):
        if add.inputs[index] is not x or add.inputs[1 - index].op.type != "Mul":
            continue
        cube = times_constant(ctx, add.inputs[1 - index].op, 0.044715)
        if cube is None or cube.op.type != "Pow" or cube.op.inputs[0] is not x:
            continue
        exponent = cube.op.inputs[1]
        if ctx.kind_of(exponent) == "constant" \
                and ctx.value_of(exponent).reshape(-1).tolist() == [3.0]:
            return True
    return False


@rewrite("Mul")
def match_gelu_erf(ctx) -> bool:
    """x * 0.5 * (1 + erf(x / sqrt(2))), the product in any grouping: emit `gelu`."""
    if ctx.op.type != "Mul":
        return False
    factors = _factors(ctx, ctx.op, depth=2)
    half = [t for t in factors if _is_number(ctx, t, 0.5)]
    tails = [t for t in factors if t.op.type in ("Add", "AddV2")]
    if len(factors) != 3 or len(half) != 1 or len(tails) != 1:
        return False
    erf = plus_constant(ctx, tails[0].op, 1.0)
    if erf is None or erf.op.type != "Erf":
        return False
    scaled = erf.op.inputs[0].op
    if scaled.type == "RealDiv" and _is_number(ctx, scaled.inputs[1], 2 ** 0.5):
        x = scaled.inputs[0]
    elif scaled.type == "Mul":
        x = times_constant(ctx, scaled, 2 ** -0.5)
    else:
        return False
    rest = [t for t in factors if t is not half[0] and t is not tails[0]]
    if x is None or rest != [x]:
        return False
    ctx.emit("gelu", [ctx.ref_of(x)], attrs={"approximate": "none"})
    return True


def _factors(ctx, op, depth: int) -> list:
    """The factors of a product of Muls nested `depth` deep (a, b of a * b, recursively)."""
    found = []
    for tensor in op.inputs:
        if tensor.op.type == "Mul" and depth > 1 and ctx.kind_of(tensor) != "constant":
            found.extend(_factors(ctx, tensor.op, depth - 1))
        else:
            found.append(tensor)
    return found


def _is_number(ctx, tensor, expected: float) -> bool:
    if ctx.kind_of(tensor) != "constant":
        return False
    value = ctx.value_of(tensor)
    return value.size == 1 and same_number(value, expected)
