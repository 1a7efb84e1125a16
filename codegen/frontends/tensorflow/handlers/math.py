"""Elementwise math: Rsqrt, Sqrt, Neg, Exp, Log, Erf, Erfc, Square, Abs, Softplus, Sign, Ceil,
Floor, Round, ZerosLike, OnesLike, LeakyRelu, SquaredDifference, Pow, ClipByValue, Cast
between float types, Sum and Cumsum."""

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
    "Sign": "sign",
    "Ceil": "ceil",
    "Floor": "floor",
    "Round": "round",  # halves to even, as torch.round
    "ZerosLike": "zeros_like",
    "OnesLike": "ones_like",
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


@handler("ClipByValue", ir="clamp")
def clip_by_value(ctx) -> None:
    """x.clamp(min, max) for number bounds; tensor bounds are torch.maximum / torch.minimum."""
    bounds = [ctx.const(i) if ctx.is_const(i) else None for i in (1, 2)]
    if all(b is not None and b.size == 1 for b in bounds):
        low, high = (float(b.reshape(-1)[0]) for b in bounds)
        ctx.emit("clamp", [ctx.input(0)], attrs={"min": low, "max": high})
        return
    low = ctx.emit("maximum", [ctx.input(0), ctx.input(1)], suffix="min")
    ctx.emit("minimum", [low, ctx.input(2)])


@handler("Cumsum", ir="cumsum", static=(1,))
def cumsum(ctx) -> None:
    axis = int(ctx.const(1).reshape(-1)[0]) % ctx.rank(0)
    ctx.emit("cumsum", [ctx.input(0)], attrs={"axis": axis, "exclusive": bool(ctx.attr("exclusive")),
                                              "reverse": bool(ctx.attr("reverse"))})
