"""Scaled dot-product attention as Keras 3 MultiHeadAttention writes it (heads last,
[N, T, H, D]):
    scores = einsum(q, k) -> [N, H, T, S]        (either operand order)
    scores = scores * scale                       (or q * scale before the einsum)
    scores = where(mask, scores, -large)          (optional; mask & ones_like(scores))
    out = einsum(softmax(scores), v) -> [N, T, H, D]
is one `attention` op: F.scaled_dot_product_attention with that scale and a boolean mask."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.einsum import canonical
from codegen.frontends.tensorflow.rewrites import rewrite

SCORES = {"abcd,aecd->acbe": (0, 1), "abcd,aecd->aceb": (1, 0)}  # -> (query, key) operands
CONTEXT = "abcd,adbe->acbe"  # probabilities [N, H, T, S] x values [N, S, H, D] -> [N, T, H, D]
LARGE = -1e4  # a mask fill at or below this is "excluded" (Keras uses -1e9 or the dtype's min)


@rewrite("Einsum")
def match_attention(ctx) -> bool:
    if len(ctx.op.inputs) != 2 or canonical(ctx.op.get_attr("equation").decode()) != CONTEXT:
        return False
    softmax, value = ctx.op.inputs[0].op, ctx.op.inputs[1]
    if softmax.type != "Softmax":
        return False
    scores, mask = _unmasked(ctx, softmax.inputs[0])
    if scores is None:
        return False
    scale, scores = _scaled(ctx, scores)
    if scores.op.type != "Einsum" or len(scores.op.inputs) != 2:
        return False
    order = SCORES.get(canonical(scores.op.get_attr("equation").decode()))
    if order is None:
        return False
    query, key = (scores.op.inputs[i] for i in order)
    if scale is None:
        scale, query = _scaled(ctx, query)
    if scale is None:
        scale = 1.0
    inputs = [ctx.ref_of(t) for t in (query, key, value)]
    if mask is not None:
        inputs.append(ctx.ref_of(mask))
    ctx.emit("attention", inputs, attrs={"scale": scale, "masked": mask is not None})
    return True


def _unmasked(ctx, tensor):
    """(scores, boolean mask or None) behind where(mask, scores, -large)."""
    op = tensor.op
    if op.type != "SelectV2":
        return tensor, None
    condition, scores, fill = op.inputs
    if ctx.kind_of(fill) != "constant" or ctx.kind_of(condition) == "constant":
        return None, None
    value = ctx.value_of(fill)
    if value.size != 1 or float(value.reshape(-1)[0]) > LARGE:
        return None, None
    mask = condition
    if mask.op.type == "LogicalAnd":  # the mask & ones_like(scores): the mask alone
        ones = [t for t in mask.op.inputs if _is_ones_like(ctx, t, scores)]
        if ones:
            mask = next(t for t in mask.op.inputs if t is not ones[0])
    if mask.dtype.name != "bool" or mask.shape.rank != 4:
        return None, None
    return scores, mask


def _is_ones_like(ctx, tensor, like) -> bool:
    op = tensor.op
    if op.type != "Fill" or op.inputs[0].op.type != "Shape" or ctx.kind_of(op.inputs[1]) != "constant":
        return False
    return op.inputs[0].op.inputs[0] is like and bool(ctx.value_of(op.inputs[1]).reshape(-1)[0])


def _scaled(ctx, tensor):
    """(scale, t) if tensor is t * scale with a one-element constant scale, else (None, tensor)."""
    op = tensor.op
    if op.type != "Mul":
        return None, tensor
    for index in (0, 1):
        constant, other = op.inputs[index], op.inputs[1 - index]
        if ctx.kind_of(constant) == "constant" and ctx.kind_of(other) != "constant":
            value = ctx.value_of(constant)
            if value.size == 1:
                return float(value.reshape(-1)[0]), other
    return None, tensor
