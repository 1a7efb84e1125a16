"""Scaled dot-product attention as Keras 3 MultiHeadAttention writes it (heads last,
[N, T, H, D]):
    scores = einsum(q, k) -> [N, H, T, S]        (either operand order)
    scores = scores * scale                       (or q * scale before the einsum)
    scores = where(mask, scores, -large)          (optional; mask & ones_like(scores))
    out = einsum(softmax(scores), v) -> [N, T, H, D]
is one `attention` op: F.scaled_dot_product_attention with that scale and a boolean mask.
The other form Keras writes (keras-hub's BERT) moves the heads first and uses matmuls:
    scores = transpose(matmul(transpose(k), transpose(q * scale)))   -> [N, H, T, S]
    probs = where(mask, softmax(where(mask, scores, -large)), 0)
    out = transpose(matmul(probs, transpose(v)))                     -> [N, T, H, D]
(the zeros after the softmax only differ from SDPA for a query that may attend nothing).
TF1 (BERT's modeling.py) writes it heads first with an additive mask:
    scores = matmul(q, k, transpose_b=True) * scale + adder                  -> [N, H, T, S]
    out = transpose(matmul(softmax(scores), v), [0, 2, 1, 3])                -> [N, T, H, D]
and the adder, a float mask SDPA adds to the scores itself, is
(1 - expand_dims(ones([N, T, 1]) * mask [N, 1, S], 1)) * -10000: the ones only broadcast
the mask over the queries, which SDPA does, so it is written (1 - mask.unsqueeze(1)) * c."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.dynamic import emit_causal_mask
from codegen.frontends.tensorflow.handlers.einsum import canonical
from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.causal_mask import causal_mask, sliding_window
from codegen.ir.graph import TensorInfo

SCORES = {"abcd,aecd->acbe": (0, 1), "abcd,aecd->aceb": (1, 0)}  # -> (query, key) operands
CONTEXT = "abcd,adbe->acbe"  # probabilities [N, H, T, S] x values [N, S, H, D] -> [N, T, H, D]
LARGE = -1e4  # a mask fill at or below this is "excluded" (Keras uses -1e9 or the dtype's min)


@rewrite("Einsum", "Transpose")
def match_attention(ctx) -> bool:
    found = _context_einsum(ctx) if ctx.op.type == "Einsum" else _context_matmul(ctx)
    if found is None:
        return False
    probs, value = found
    softmax = probs.op
    if softmax.type == "SelectV2":  # where(mask, softmax(...), 0)
        softmax = _zeroed(ctx, softmax)
    if softmax is None or softmax.type != "Softmax":
        return False
    scores, mask = _unmasked(ctx, softmax.inputs[0])
    if scores is None or (probs.op.type == "SelectV2" and probs.op.inputs[0] is not mask):
        return False
    adder = None
    if mask is None and scores.op.type in ("Add", "AddV2"):  # scores + a float mask
        scores, adder = _added(ctx, scores.op)
        if scores is None:
            return False
    scale, scores = _scaled(ctx, scores)
    pair = _scores(ctx, scores)
    if pair is None:
        return False
    query, key = pair
    if scale is None:
        scale, query = _scaled(ctx, query)
    if scale is None:
        scale = 1.0
    inputs = [ctx.ref_of(t) for t in (query, key, value)]
    grouped = _grouped(ctx, inputs)
    if grouped is not None:  # grouped-query attention: SDPA repeats the key/value heads
        inputs[1:] = grouped
    causal = mask is not None and causal_mask(mask) is not None
    exact = causal and causal_mask(mask)[1] is None and sliding_window(mask) is None
    if exact:  # exactly causal: SDPA's is_causal
        mask = None
    if mask is not None:
        inputs.append(emit_causal_mask(ctx, mask) if causal else ctx.ref_of(mask))
    elif adder is not None:
        inputs.append(_broadcast_mask(ctx, adder) or ctx.ref_of(adder))
    attrs = {"scale": scale, "masked": mask is not None or adder is not None}
    if grouped is not None:
        attrs["gqa"] = True
    ctx.emit("attention", inputs, attrs={**attrs, "causal": True} if causal else attrs)
    return True


def _grouped(ctx, refs: list[str]) -> list[str] | None:
    """The key and value before `repeat_interleave(k, dim=2)` (the heads of [N, S, H, D]) when
    both are repeated so, the query having their heads times k; else None."""
    nodes = [ctx.ir_node(ref) for ref in refs[1:]]
    if any(node is None or node.op != "repeat_interleave" or node.attrs["axis"] != 2
           for node in nodes) or nodes[0].attrs["repeats"] != nodes[1].attrs["repeats"]:
        return None
    heads = [ctx.ir_node(ref).outputs[int(ref.rpartition(":")[2])].shape[2] if ctx.ir_node(ref)
             else None for ref in (refs[0], nodes[0].inputs[0], nodes[1].inputs[0])]
    if None in heads or heads[1] != heads[2] or heads[0] != heads[1] * nodes[0].attrs["repeats"]:
        return None
    return [node.inputs[0] for node in nodes]


def _added(ctx, add):
    """(scores, float mask) of scores + mask with scores a product of query and key
    (perhaps scaled) and the mask [N or 1, H or 1, T or 1, S] computed; else (None, None)."""
    for index in (0, 1):
        scores, adder = add.inputs[index], add.inputs[1 - index]
        if _scores(ctx, _scaled(ctx, scores)[1]) is None:
            continue
        if ctx.kind_of(adder) in ("constant", "weight") or not adder.dtype.is_floating \
                or adder.shape.rank != 4:
            return None, None
        return scores, adder
    return None, None


def _broadcast_mask(ctx, adder) -> str | None:
    """BERT's adder (1 - expand_dims(ones * mask, 1)) * c as (1 - mask.unsqueeze(1)) * c,
    emitted once where the adder is made (every layer reads it); None for another form."""
    scale = adder.op
    if scale.type != "Mul":
        return None
    c = next((i for i in (0, 1) if _number(ctx, scale.inputs[i]) is not None), None)
    sub = scale.inputs[1 - c].op if c is not None else None
    if sub is None or sub.type != "Sub" or _number(ctx, sub.inputs[0]) != 1.0:
        return None
    expand = sub.inputs[1].op
    if expand.type != "ExpandDims" or _number(ctx, expand.inputs[1]) != 1:
        return None
    product = expand.inputs[0].op
    if product.type != "Mul":
        return None
    for ones, mask in (product.inputs, reversed(product.inputs)):
        fill = ones.op
        if fill.type == "Fill" and _number(ctx, fill.inputs[1]) == 1.0 and mask.shape.rank == 3 \
                and mask.shape.as_list()[1] == 1 and ones.shape.as_list()[2:] == [1]:
            break
    else:
        return None
    name = f"{scale.name}/broadcast:0"
    if ctx.ir_op(name) is not None:  # emitted for an earlier layer
        return name
    batch, _, keys = mask.shape.as_list()
    info = TensorInfo([batch, 1, 1, keys], "float32")
    where = f"{ctx.of(scale).scope}/attention_mask"  # (the code names it so)
    wide = ctx.of(expand).emit("unsqueeze", [ctx.ref_of(mask)], attrs={"axes": [1]},
                               suffix="broadcast", outputs=[info], scope=where)
    sub_ctx, scale_ctx = ctx.of(sub), ctx.of(scale)
    inverted = sub_ctx.emit("sub", [sub_ctx.input_or_scalar(0), wide], suffix="broadcast",
                            outputs=[info], scope=where)
    operands = [inverted, scale_ctx.input_or_scalar(c)]
    return scale_ctx.emit("mul", operands if c == 1 else operands[::-1], suffix="broadcast",
                          outputs=[info], scope=where)


def _number(ctx, tensor) -> float | None:
    if ctx.kind_of(tensor) != "constant":
        return None
    value = ctx.value_of(tensor)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _context_einsum(ctx):
    """(probabilities, values) of einsum(probs [N, H, T, S], v [N, S, H, D]) -> [N, T, H, D]."""
    if len(ctx.op.inputs) != 2 or canonical(ctx.op.get_attr("equation").decode()) != CONTEXT:
        return None
    return ctx.op.inputs[0], ctx.op.inputs[1]


def _context_matmul(ctx):
    """(probabilities, values) of transpose(matmul(probs, transpose(v)), [0, 2, 1, 3])."""
    if _perm(ctx, ctx.op) != [0, 2, 1, 3]:
        return None
    matmul = ctx.op.inputs[0].op
    if matmul.type != "BatchMatMulV2" or matmul.get_attr("adj_x") or matmul.get_attr("adj_y"):
        return None
    values = matmul.inputs[1].op
    if values.type != "Transpose" or _perm(ctx, values) != [0, 2, 1, 3]:
        return None
    return matmul.inputs[0], values.inputs[0]


def _perm(ctx, op) -> list[int] | None:
    if op.type != "Transpose" or ctx.kind_of(op.inputs[1]) != "constant":
        return None
    return ctx.value_of(op.inputs[1]).reshape(-1).tolist()


def _scores(ctx, scores):
    """(query, key) [N, T, H, D] whose products per head are `scores` [N, H, T, S]."""
    op = scores.op
    if op.type == "Einsum" and len(op.inputs) == 2:
        order = SCORES.get(canonical(op.get_attr("equation").decode()))
        return None if order is None else tuple(op.inputs[i] for i in order)
    swapped = False
    if op.type == "Transpose" and _perm(ctx, op) == [0, 1, 3, 2]:
        op, swapped = op.inputs[0].op, True
    if op.type != "BatchMatMulV2":
        return None
    rows = _operand(ctx, op.inputs[0], op.get_attr("adj_x"), [0, 2, 1, 3])
    cols = _operand(ctx, op.inputs[1], op.get_attr("adj_y"), [0, 2, 3, 1])
    if rows is None or cols is None:
        return None
    return (cols, rows) if swapped else (rows, cols)


def _operand(ctx, tensor, adjoint: bool, want: list[int]):
    """The [N, T, H, D] tensor behind a matmul operand that reads it as `want` (a permute,
    or a chain of them as MiT's `transpose(transpose(k, [0, 2, 1, 3]), [0, 1, 3, 2])` writes:
    heads first; time and size in the order the product needs), else None."""
    if adjoint:  # the product reads the permuted tensor with its last two axes swapped
        want = [*want[:2], want[3], want[2]]
    perm = _perm(ctx, tensor.op)
    if perm is None:
        return None
    tensor = tensor.op.inputs[0]
    while perm != want and (inner := _perm(ctx, tensor.op)) is not None:
        perm, tensor = [inner[axis] for axis in perm], tensor.op.inputs[0]
    return tensor if perm == want else None


def _zeroed(ctx, op):
    """The op behind where(mask, x, 0), else None."""
    fill = op.inputs[2]
    if ctx.kind_of(fill) != "constant" or ctx.value_of(fill).reshape(-1).tolist() != [0.0]:
        return None
    return op.inputs[1].op


def _unmasked(ctx, tensor, rank: int = 4):
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
    if mask.dtype.name != "bool" or mask.shape.rank != rank:
        return None, None
    return scores, mask


def _is_ones_like(ctx, tensor, like) -> bool:
    op = tensor.op
    if op.type != "Fill" or op.inputs[0].op.type != "Shape":
        return False
    if ctx.kind_of(op.inputs[1]) != "constant":
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
