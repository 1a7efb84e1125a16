"""Grouped-query attention as keras-hub's Gemma writes it (its query heads grouped by the
key/value head they share, no repeat of the keys and values):
    q = reshape(query * scale, [N, T, KV, G, D])                  query [N, T, H = KV G, D]
    scores = einsum("btkgh,bskh->bkgts", q, key)                  key, value [N, S, KV, D]
    probs = where(mask, softmax(where(mask, scores, -large)), 0)  mask [N, 1, 1, T, S]
    out = reshape(einsum("bkgts,bskh->btkgh", probs, value), [N, T, H, D])
is one `attention` op with `gqa`: F.scaled_dot_product_attention(..., enable_gqa=True),
which gives query head h the key/value head h // G, as the reshape does. The mask must be
the causal mask (and padding; see causal_mask.py), written as SDPA's [N, 1, T, S] mask
(or is_causal=True). Like the ungrouped form (attention.py), a query that may attend
nothing is the one difference (Gemma zeroes those rows after, itself)."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.dynamic import emit_causal_mask
from codegen.frontends.tensorflow.handlers.einsum import canonical
from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.attention import _scaled, _unmasked, _zeroed
from codegen.frontends.tensorflow.rewrites.causal_mask import causal_mask, sliding_window
from codegen.frontends.tensorflow.rewrites.rotary import _value
from codegen.ir.graph import TensorInfo

SCORES = canonical("btkgh,bskh->bkgts")
CONTEXT = canonical("bkgts,bskh->btkgh")


def _einsum(tensor, equation: str):
    op = tensor.op
    if op.type != "Einsum" or len(op.inputs) != 2:
        return None
    return op if canonical(op.get_attr("equation").decode()) == equation else None


def _leading(op, sources) -> bool:
    """Whether the reshape `op` keeps the batch and time axes: static and equal, or its
    target's first two sizes are shape(t)[0] and shape(t)[1] of one of `sources`."""
    source, result = op.inputs[0].shape.as_list(), op.outputs[0].shape.as_list()
    if None not in source[:2] and source[:2] == result[:2]:
        return True
    target = op.inputs[1].op
    if target.type != "Pack" or len(target.inputs) != len(result):
        return False
    names = {t.name for t in sources}
    for axis in (0, 1):
        item = target.inputs[axis].op
        while item.type == "Cast":
            item = item.inputs[0].op
        if item.type != "StridedSlice" or item.inputs[0].op.type != "Shape" \
                or item.get_attr("shrink_axis_mask") != 1:
            return False
        if item.inputs[0].op.inputs[0].name not in names:
            return False
        begin = _value(item.inputs[1])
        if begin is None or begin.tolist() != [axis]:
            return False
    return True


@rewrite("Reshape")
def match_grouped_attention(ctx) -> bool:
    reshape = ctx.op
    context = _einsum(reshape.inputs[0], CONTEXT)
    if context is None or reshape.outputs[0].shape.rank != 4:
        return False
    probs, value = context.inputs
    if probs.op.type != "SelectV2":
        return False
    softmax = _zeroed(ctx, probs.op)
    if softmax is None or softmax.type != "Softmax":
        return False
    scores, mask = _unmasked(ctx, softmax.inputs[0], rank=5)
    if scores is None or mask is None or probs.op.inputs[0] is not mask:
        return False
    product = _einsum(scores, SCORES)
    if product is None or product.inputs[0].op.type != "Reshape":
        return False
    grouped, key = product.inputs
    scaled = grouped.op.inputs[0]
    scale, query = _scaled(ctx, scaled)
    if scale is None or [t.shape.rank for t in (query, key, value, grouped)] != [4, 4, 4, 5]:
        return False
    shapes = [t.shape.as_list() for t in (query, key, value, grouped)]
    (heads, dim), (kv, _), (kv_v, _), (kv_q, group, dim_q) = (
        shapes[0][2:], shapes[1][2:], shapes[2][2:], shapes[3][2:])
    if None in (heads, dim, kv, kv_v, group) or kv != kv_v or kv != kv_q or dim != dim_q \
            or heads != kv * group or reshape.outputs[0].shape.as_list()[2:] != [heads, dim]:
        return False
    if not _leading(grouped.op, [scaled, query]) \
            or not _leading(reshape, [grouped, context.outputs[0], scaled, query]):
        return False
    found = causal_mask(mask, grouped=True)
    if found is None:
        return False
    inputs = [ctx.ref_of(t) for t in (query, key, value)]
    exact = found[1] is None and sliding_window(mask, grouped=True) is None
    if not exact:
        batch, _, _, length, keys = mask.shape.as_list()
        info = TensorInfo([batch, 1, length, keys], "bool")
        inputs.append(emit_causal_mask(ctx, mask, info=info, grouped=True))
    attrs = {"scale": scale, "masked": not exact, "causal": True}
    if group > 1:
        attrs["gqa"] = True
    ctx.emit("attention", inputs, attrs=attrs)
    return True
