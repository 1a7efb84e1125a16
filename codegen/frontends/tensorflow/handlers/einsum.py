"""Einsum and BatchMatMul: Keras 3 `EinsumDense` (MultiHeadAttention's projections) as
`nn.Linear`; an einsum or batched matmul of two computed tensors as `torch.einsum` /
`torch.matmul` (attention scores and context, when the attention rewrite does not take
them)."""

from __future__ import annotations

import re

import numpy as np

from codegen.frontends.tensorflow.handlers import handler
from codegen.ir.graph import TensorInfo

EQUATION = re.compile(r"^[a-zA-Z]+,[a-zA-Z]+->[a-zA-Z]+$")


def canonical(equation: str) -> str:
    """The equation with its letters renamed a, b, c, ... in order of first use, so that
    'BTNH,BSNH->BNTS' and 'abcd,aecd->acbe' compare equal."""
    names: dict[str, str] = {}
    for char in equation:
        if char.isalpha() and char not in names:
            names[char] = chr(ord("a") + len(names))
    return "".join(names.get(char, char) for char in equation)


def dense_form(ctx, op) -> tuple[str, list[int]] | None:
    """How an einsum of a tensor with a weight is a linear map on trailing axes:
    ('split', [heads, size]) for [N, T, C] x [C, H, D] -> [N, T, H, D] (a projection into
    heads), ('merge', [C_out]) for [N, T, H, D] x [H, D, C] -> [N, T, C] (their output
    projection), ('plain', [C_out]) for [N, T, C] x [C, U] -> [N, T, U]; else None."""
    equation = op.get_attr("equation").decode()
    if ctx.kind_of(op.inputs[1]) not in ("weight", "variable", "constant"):
        return None
    kernel = op.inputs[1].shape.as_list()
    if None in kernel:
        return None
    forms = {"abc,cde->abde": ("split", kernel[1:]), "abcd,cde->abe": ("merge", kernel[2:]),
             "abc,cd->abd": ("plain", kernel[1:])}
    return forms.get(canonical(equation))


def emit_dense(ctx, op, bias: int | None = None) -> None:
    """`op` (an einsum of x with a weight, see `dense_form`) as linear [+ bias] over the
    flattened trailing axes; `bias` is the index of the bias input of `ctx.op` (an AddV2
    right after the einsum, as EinsumDense adds its bias)."""
    form, sizes = dense_form(ctx, op)
    kernel = op.inputs[1].shape.as_list()
    x_shape, out_shape = op.inputs[0].shape.as_list(), op.outputs[0].shape.as_list()
    scope = op.name.removesuffix("/einsum/Einsum") if op.name.endswith("/einsum/Einsum") \
        else ctx.scope  # the Keras layer, not its `einsum` name scope
    x = ctx.ref_of(op.inputs[0])
    fan_in, fan_out = kernel[0], int(np.prod(sizes))
    if form == "merge":  # [N, T, H, D] -> [N, T, H * D]
        fan_in = kernel[0] * kernel[1]
        x = ctx.emit("flatten", [x], attrs={"axis": len(x_shape) - 2}, suffix="flatten",
                     outputs=[_info(ctx, [*x_shape[:-2], fan_in])], scope=scope)
    steps = [("reshape", (fan_in, fan_out))] if kernel != [fan_in, fan_out] else None
    weights = {"kernel": ctx.of(op).weight(1, transforms=steps)}
    if bias is not None:
        weights["bias"] = ctx.weight(bias, transforms=[("reshape", (fan_out,))]
                                     if ctx.input_info(bias).rank != 1 else None)
    if form != "split":
        ctx.emit("linear", [x], weights=weights, scope=scope)
        return
    flat = ctx.emit("linear", [x], weights=weights, suffix="linear", scope=scope,
                    outputs=[_info(ctx, [*out_shape[:-2], fan_out])])
    ctx.emit("unflatten", [flat], attrs={"axis": len(out_shape) - 2, "sizes": list(sizes)},
             scope=scope)


def _info(ctx, shape) -> TensorInfo:
    return TensorInfo(list(shape), ctx.output_info(0).dtype)


@handler("Einsum", ir="einsum")
def einsum(ctx) -> None:
    if len(ctx.op.inputs) == 2 and dense_form(ctx, ctx.op) is not None:
        emit_dense(ctx, ctx.op)
        return
    equation = ctx.attr("equation")
    if len(ctx.op.inputs) != 2 or not EQUATION.match(equation or ""):
        ctx.fail(f"einsum {equation!r}: only two operands without '...' are supported")
    ctx.emit("einsum", [ctx.input(0), ctx.input(1)], attrs={"equation": equation})


@handler("BatchMatMulV2", "BatchMatMul", ir="matmul")
def batch_matmul(ctx) -> None:
    """a @ b over the last two axes (each transposed first when adj_x / adj_y says so)."""
    ctx.emit("matmul", [ctx.input(0), ctx.input(1)],
             attrs={"adj_x": bool(ctx.attr("adj_x")), "adj_y": bool(ctx.attr("adj_y"))})
