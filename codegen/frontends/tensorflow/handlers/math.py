"""Elementwise math: Rsqrt, Sqrt, Neg, Exp, Log, Erf, Erfc, Square, Abs, Softplus, Sign, Ceil,
Floor, Round, trigonometric and hyperbolic functions and their inverses, Expm1, Log1p,
Reciprocal/Inv, IsNan/IsInf/IsFinite, LogicalNot, ZerosLike, OnesLike, LeakyRelu,
SquaredDifference, Pow, ClipByValue, Cast between numeric dtypes and bool, the reductions
Sum/Min/Prod/All/EuclideanNorm/ArgMax/ArgMin, and Cumsum."""

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
    "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan",
    "Sinh": "sinh", "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh",
    "Expm1": "expm1", "Log1p": "log1p", "Reciprocal": "reciprocal", "Inv": "reciprocal",
    "IsNan": "isnan", "IsInf": "isinf", "IsFinite": "isfinite", "LogicalNot": "logical_not",
    "Rint": "round", "Lgamma": "lgamma", "Digamma": "digamma", "Erfinv": "erfinv",
    "Ndtri": "ndtri", "BesselI0e": "bessel_i0e",
    "Invert": "bitwise_not",
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
    ctx.emit("pow", [ctx.input(0), ctx.input_or_scalar(1, integers=True)])  # x ** 2 stays int


# dtypes `cast` writes (torch has them all); complex64 only from float32 (a real signal)
CASTS = {"bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
         "float64"}


@handler("Cast", ir="cast")
def cast(ctx) -> None:
    """x.float(), x.int(), ...: float to integer truncates towards zero in both; to bool is
    x != 0. A float16/bfloat16/float64 constant read as float32 stays as it is (weights)."""
    source, target = ctx.input_info(0).dtype, ctx.output_info(0).dtype
    if ctx.is_size(0) and source.startswith("int") and target.startswith("int"):
        ctx.alias(ctx.op.outputs[0], ctx.input(0))  # a size is a Python int of any width
    elif ctx.is_size(0):  # (to float: written as the int itself, see size_ops.size_cast)
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": target})  # int(length / 2)
    elif source == target or (source in FLOATS and target == "float32" and ctx.is_const(0)):
        ctx.emit("identity", [ctx.input(0)])
    elif target == "complex64" and source == "float32":  # a real signal before an FFT
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": "complex64"})
    elif source in CASTS and target in CASTS:
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": target})
    else:
        ctx.fail(f"cast from {source} to {target} is not supported")


@handler("Sum", ir="reduce_sum")
def reduce_sum(ctx) -> None:
    reduction(ctx, "reduce_sum")


@handler("Min", ir="reduce_min")
def reduce_min(ctx) -> None:
    reduction(ctx, "reduce_min")


@handler("Prod", ir="reduce_prod")
def reduce_prod(ctx) -> None:
    reduction(ctx, "reduce_prod")


@handler("All", ir="reduce_all")
def reduce_all(ctx) -> None:
    reduction(ctx, "reduce_all")


@handler("EuclideanNorm", ir="euclidean_norm")
def euclidean_norm(ctx) -> None:
    if ctx.input_info(0).dtype not in FLOATS:
        ctx.fail("EuclideanNorm of integers (rounded by TF) is not supported")
    reduction(ctx, "euclidean_norm")


def arg_reduce(ctx) -> None:
    axis = int(ctx.const(1).reshape(-1)[0]) % ctx.rank(0)
    dtype = ctx.output_info(0).dtype
    if dtype not in ("int32", "int64"):
        ctx.fail(f"{ctx.op.type} with output_type {dtype} is not supported")
    ctx.emit(ctx.op.type.lower(), [ctx.input(0)],
             attrs={"axes": [axis], "keepdims": False, "dtype": dtype})


handler("ArgMax", ir="argmax", static=(1,))(arg_reduce)
handler("ArgMin", ir="argmin", static=(1,))(arg_reduce)


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
