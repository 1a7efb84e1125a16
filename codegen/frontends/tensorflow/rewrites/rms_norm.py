"""RMS normalisation written as arithmetic over the last axis (Llama, T5, Mistral, Keras 3
RMSNormalization):
    y = x * rsqrt(mean(x ** 2, -1, keepdims=True) + eps) * scale
with `x ** 2` as Square, Pow(x, 2) or x * x, `rsqrt(v)` as Rsqrt or Reciprocal(Sqrt(v)), the
scale on either side, and Gemma's form `... * (1 + scale)`. Without a scale it is the
normalisation alone. The pattern ends at the last Mul; the scale is a [channels] weight.
"""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import channel_vector

CASTS = ("Identity", "Cast")  # keras-hub casts to float32 first: a no-op for float32 models


def _source(tensor):
    """`tensor` behind identities and casts (x as the normalisation reads it)."""
    while tensor.op.type in CASTS and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _squared(ctx, op):
    """x if op is x ** 2 (Square, Pow(x, 2), x * x), else None."""
    if op.type == "Square":
        return _source(op.inputs[0])
    if op.type == "Pow" and ctx.kind_of(op.inputs[1]) == "constant":
        exponent = ctx.value_of(op.inputs[1])
        return _source(op.inputs[0]) if exponent.size == 1 and float(exponent) == 2.0 else None
    if op.type == "Mul" and _source(op.inputs[0]) is _source(op.inputs[1]):
        return _source(op.inputs[0])
    return None


def _epsilon_of_mean_square(ctx, tensor, x) -> float | None:
    """eps if `tensor` is mean(x ** 2, last axis, keepdims) + eps, else None."""
    add = tensor.op
    if add.type not in ("Add", "AddV2"):
        return None
    for mean, epsilon in (add.inputs, reversed(add.inputs)):
        if mean.op.type != "Mean" or ctx.kind_of(epsilon) != "constant":
            continue
        axes = ctx.value_of(mean.op.inputs[1]).reshape(-1).tolist()
        rank = mean.op.inputs[0].shape.rank
        if len(axes) != 1 or axes[0] not in (-1, (rank or 0) - 1) or not rank:
            return None
        if not mean.op.get_attr("keep_dims") or _squared(ctx, mean.op.inputs[0].op) is not x:
            return None
        value = ctx.value_of(epsilon)
        return float(value.reshape(-1)[0]) if value.size == 1 else None
    return None


def _inverse_rms(ctx, tensor, x) -> float | None:
    """eps if `tensor` is 1 / sqrt(mean(x ** 2) + eps) (Rsqrt, or Reciprocal of Sqrt)."""
    op = tensor.op
    if op.type == "Rsqrt":
        return _epsilon_of_mean_square(ctx, op.inputs[0], x)
    if op.type in ("Reciprocal", "Inv") and op.inputs[0].op.type == "Sqrt":
        return _epsilon_of_mean_square(ctx, op.inputs[0].op.inputs[0], x)
    return None


def normalised(ctx, tensor):
    """(x, eps) if `tensor` is x * rsqrt(mean(x ** 2, -1) + eps) (or x / sqrt(...)), else None."""
    op = tensor.op
    if op.type == "Mul":
        for a, b in (op.inputs, reversed(op.inputs)):
            x = _source(a)
            epsilon = _inverse_rms(ctx, b, x)
            if epsilon is not None:
                return x, epsilon
    if op.type == "RealDiv" and op.inputs[1].op.type == "Sqrt":
        x = _source(op.inputs[0])
        epsilon = _epsilon_of_mean_square(ctx, op.inputs[1].op.inputs[0], x)
        if epsilon is not None:
            return x, epsilon
    return None


def _scale(ctx, op, index: int, channels: int) -> tuple[str, bool] | None:
    """(the IR weight, whether it is Gemma's 1 + scale) if input `index` of `op` is a
    [channels] scale or 1 + scale, else None. The 1 + scale form is looked for first: in a
    frozen graph it is all constants, and folding it would lose the trainable variable."""
    tensor = op.inputs[index]
    plus = _source(tensor).op
    if plus.type in ("Add", "AddV2"):
        for one, scale in ((0, 1), (1, 0)):
            if ctx.kind_of(plus.inputs[one]) != "constant":
                continue
            value = ctx.value_of(plus.inputs[one])
            if value.size == 1 and float(value.reshape(-1)[0]) == 1.0:
                found = channel_vector(ctx, plus, scale, channels, suffix="scale")
                if found is not None:
                    return found, True
    found = channel_vector(ctx, op, index, channels, suffix="scale")
    return None if found is None else (found, False)


@rewrite("Mul")
def match_rms_norm(ctx) -> bool:
    """Emit rms_norm for x * rsqrt(mean(x ** 2, -1) + eps) [* scale] over the last axis."""
    op = ctx.op
    rank = op.outputs[0].shape.rank
    channels = ctx.output_info(0).shape[-1] if rank else None
    if not rank or not channels:
        return False
    for index in (0, 1):
        found = normalised(ctx, op.inputs[index])
        if found is None:
            continue
        scale = _scale(ctx, op, 1 - index, channels)
        if scale is None:
            continue
        x, epsilon = found
        if x.shape.rank != rank:  # the scale broadcasts x to another shape
            return False
        ctx.emit("rms_norm", [ctx.ref_of(x)],
                 attrs={"axis": rank - 1, "epsilon": epsilon, "plus_one": scale[1]},
                 weights={"scale": scale[0]})
        return True
    found = normalised(ctx, op.outputs[0])
    if found is None or any(_is_scaled(consumer, op) for consumer in op.outputs[0].consumers()):
        return False
    x, epsilon = found
    ctx.emit("rms_norm", [ctx.ref_of(x)],
             attrs={"axis": rank - 1, "epsilon": epsilon, "plus_one": False})
    return True


def _is_scaled(consumer, op) -> bool:
    """Whether `consumer` multiplies op's result by something (a scale the outer match takes)."""
    return consumer.type == "Mul" and consumer is not op
