"""Elementwise math: Rsqrt, Sqrt, Neg, Exp, Log, Erf, Erfc, Square, Abs, Softplus, LeakyRelu,
SquaredDifference, Pow, Cast between float types, and Sum."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.shape import reduction

UNARY = {
    "Rsqrt": "rsqrt",
    "Sqrt": "sqrt",
    "Neg": "neg",
    "Exp": "exp",
    "Log": "log",
    "Erf": "erf",
    "Erfc": "erfc",
    "Square": "square",
    "Abs": "abs",
    "Softplus": "softplus",
}
FLOATS = {"float16", "bfloat16", "float32", "float64"}


def _unary(ctx) -> None:
    ctx.emit(UNARY[ctx.op.type], [ctx.input(0)])


for _tf_op, _ir_op in UNARY.items():
    handler(_tf_op, ir=_ir_op)(_unary)


@handler("LeakyRelu", ir="leaky_relu")
def leaky_relu(ctx) -> None:
    ctx.emit("leaky_relu", [ctx.input(0)], attrs={"alpha": float(ctx.attr("alpha"))})


@handler("SquaredDifference", ir="squared_difference")
def squared_difference(ctx) -> None:
    ctx.emit("squared_difference", [ctx.input(0), ctx.input(1)])


@handler("Pow", ir="pow")
def power(ctx) -> None:
    ctx.emit("pow", [ctx.input(0), ctx.input(1)])


@handler("Cast", ir="identity")  # or "cast" (to bool, float32 or complex64)
def cast(ctx) -> None:
    source, target = ctx.input_info(0).dtype, ctx.output_info(0).dtype
    if target == "bool" and source != "bool":  # a 0/1 mask read as booleans
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": "bool"})
        return
    if target == "float32" and source in ("int32", "int64", "bool"):  # a mask read as numbers
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": "float32"})
        return
    if target == "complex64" and source == "float32":  # a real signal before an FFT
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": "complex64"})
        return
    if source != target and not (source in FLOATS and target == "float32"):
        ctx.fail(f"cast from {source} to {target} is not supported")
    ctx.emit("identity", [ctx.input(0)])


@handler("Sum", ir="reduce_sum")
def reduce_sum(ctx) -> None:
    reduction(ctx, "reduce_sum")
