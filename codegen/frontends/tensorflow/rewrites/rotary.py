"""Rotary position embedding as keras-hub's RotaryEmbedding writes it (Llama, Mistral, Gemma,
GPT-NeoX's partial rotary on x[..., :rotary_dim]), on x [N, T, heads, dim]:
    positions = range(0, shape(x)[1]) (+ start 0)
    freqs = einsum("bi,j->bij", positions[None], inv_freq)        inv_freq a [dim / 2] constant
    emb = reshape(stack([freqs, freqs], -2), [..., dim])[:, :, None, :]
    x1, x2 = split(x, 2, -1)
    out = x * cos(emb) + reshape(stack([-x2, x1], -2), shape(x)) * sin(emb)
is `cos, sin = self.rotary_emb(x)` (a `RotaryEmbedding` module holding `inv_freq`) and the
helper `apply_rotary_pos_emb(q, k, cos, sin)`, as Hugging Face's modeling_llama.py writes them.
The ops are matched loosely (to find x and inv_freq) and the meaning is then checked on TF
itself: the pattern's output for x fed at two sizes must be the formula's.

A query and a key rotated by one attention (two calls of the layer, each computing its own
angles) share one `RotaryEmbedding` call and one `apply_rotary_pos_emb(q, k, cos, sin)`
when their lengths provably agree: both are projections of the same hidden states (einsums
that keep the batch and time axes, biases, head reshapes, slices of the last axis). The
first of the two in graph order emits both; the other is its second output."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.ir.graph import TensorInfo

SKIP = ("Identity", "Cast")
SIZES = ((2, 1), (3, 5))  # (batch, length) at which the meaning is checked


def _skip(tensor):
    while tensor.op.type in SKIP and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _angles(tensor):
    """The inv_freq constant [dim / 2] behind cos(emb)'s emb (through reshapes, stacks,
    expand_dims and casts to an outer product of the positions with it), else None."""
    for _ in range(8):
        op = _skip(tensor).op
        doubled = op.type in ("Pack", "ConcatV2") and len(op.inputs) >= 2 \
            and op.inputs[0] is op.inputs[1] and len(op.inputs) == (2 if op.type == "Pack" else 3)
        if op.type in ("Reshape", "ExpandDims", "StridedSlice") or doubled:
            tensor = op.inputs[0]
        elif op.type in ("Einsum", "Mul") and len(op.inputs) == 2:
            constant = [t for t in op.inputs if _constant(t.op)]
            return constant[0] if len(constant) == 1 and constant[0].shape.rank == 1 else None
        else:
            return None
    return None


def _value(tensor) -> np.ndarray | None:
    """A constant's value (flat), else None."""
    from tensorflow.python.framework import tensor_util

    value = tensor_util.constant_value(tensor)
    return None if value is None else np.asarray(value).reshape(-1)


def _constant(op, depth: int = 0) -> bool:
    """Whether `op` computes from constants only."""
    if op.type == "Const":
        return True
    if op.type in ("Placeholder", "PlaceholderWithDefault", "VarHandleOp", "ReadVariableOp",
                   "Shape") or not op.inputs or depth > 12:
        return False
    return all(_constant(t.op, depth + 1) for t in op.inputs)


def _trig(tensor, kind: str):
    """emb if tensor is (a cast of) Cos/Sin(emb), else None."""
    op = _skip(tensor).op
    return op.inputs[0] if op.type == kind else None


def rotation(op):
    """(x, inv_freq) if `op` ends x * cos + rotate_half(x) * sin (structure only), else
    None."""
    if op.type not in ("AddV2", "Add"):
        return None
    first, second = op.inputs[0].op, op.inputs[1].op
    if first.type != "Mul" or second.type != "Mul":
        return None
    for a, b in ((0, 1), (1, 0)):
        x, cos = first.inputs[a], first.inputs[b]
        emb = _trig(cos, "Cos")
        if emb is None:
            continue
        for c, d in ((0, 1), (1, 0)):
            rotated, sin = second.inputs[c], second.inputs[d]
            if _trig(sin, "Sin") is not emb and _skip(_trig(sin, "Sin") or sin) is not _skip(emb):
                continue
            if _split_of(rotated) is not x:
                continue
            inv_freq = _angles(emb)
            if inv_freq is None or x.shape.rank != 4 \
                    or x.shape.as_list()[-1] != 2 * inv_freq.shape.num_elements():
                return None
            return x, inv_freq
    return None


def _split_of(rotated):
    """x if `rotated` is reshape(stack([-x2, x1], -2)) or concat([-x2, x1], -1) of
    x1, x2 = split(x, 2, -1) (structure only), else None."""
    op = rotated.op
    if op.type == "Reshape":
        op = op.inputs[0].op
    if op.type not in ("Pack", "ConcatV2") or len(op.inputs) < 2:
        return None
    negated, half = op.inputs[0], op.inputs[1]
    if negated.op.type != "Neg":
        return None
    split = half.op
    if split.type not in ("Split", "SplitV") or negated.op.inputs[0].op is not split:
        return None
    return split.inputs[1] if split.type == "Split" else split.inputs[0]


def _expected(x: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """The formula, the angles' cos and sin in float32 then cast to x's dtype (keras-hub's
    and Hugging Face's order in a bfloat16 model)."""
    positions = np.arange(x.shape[1], dtype="float32")
    freqs = positions[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], -1)[None, :, None, :]
    x1, x2 = np.split(x, 2, -1)
    cos, sin = np.cos(emb).astype(x.dtype), np.sin(emb).astype(x.dtype)
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def _checked(ctx, op, x, inv_freq) -> bool:
    """Whether TF's output of the pattern, x fed at two sizes, is the formula's."""
    import ml_dtypes  # (TensorFlow's: numpy's finfo does not know bfloat16)

    heads, dim = x.shape.as_list()[2:]
    if heads is None or dim is None:
        return False
    rng = np.random.default_rng(0)
    for batch, length in SIZES:
        value = rng.normal(0, 1, (batch, length, heads, dim)).astype(x.dtype.as_numpy_dtype)
        got = ctx.run_fed([op.outputs[0]], {x: value})
        if got is None or got[0].shape != value.shape:
            return False
        # float32: 1e-5; bfloat16 (8 bits of mantissa): the three roundings of x * cos +
        # rotated * sin, a few units in the last place; a wrong pattern is off by O(1)
        tolerance = max(1e-5, 4 * float(ml_dtypes.finfo(value.dtype).eps))
        expected = _expected(value, inv_freq).astype("float32")
        if not np.allclose(got[0].astype("float32"), expected, rtol=tolerance, atol=tolerance):
            return False
    return True


def _config(inv_freq: np.ndarray) -> dict:
    """base and scaling_factor of inv_freq = 1 / (scaling_factor * base ** (arange(0, dim, 2)
    / dim)) as the module's constructor writes them (its buffer is loaded exactly anyway)."""
    dim, first = 2 * inv_freq.size, float(inv_freq[0])
    scaling = 1.0 / first if first > 0 else 1.0
    base = float(inv_freq[1] / inv_freq[0]) ** (-dim / 2) if inv_freq.size > 1 and first > 0 \
        else 10000.0
    config = {"base": round(base) if abs(base - round(base)) < 1e-3 * base else float(f"{base:.6g}")}
    if abs(scaling - 1.0) > 1e-6:
        config["scaling_factor"] = float(f"{scaling:.6g}")
    return config


def _rows(tensor):
    """The tensor whose batch and time axes `tensor` keeps (projections, biases, head
    reshapes and last-axis slices looked through), so two tensors with the same rows
    have the same length."""
    for _ in range(12):
        op = tensor.op
        if op.type == "Einsum" and len(op.inputs) == 2:
            equation = op.get_attr("equation").decode().replace(" ", "")
            inputs, output = equation.split("->")
            first = inputs.split(",")[0]
            if "." in equation or len(first) < 3 or output[:2] != first[:2]:
                return tensor
            tensor = op.inputs[0]
        elif _keeps_rows(op):
            tensor = op.inputs[0]
        else:
            return tensor
    return tensor


def _keeps_rows(op) -> bool:
    """Whether op's output has its first input's batch and time sizes: a bias or a cast, a
    reshape that splits or merges the axes after them, a slice of the last axis only."""
    if op.type in ("BiasAdd", "Identity", "Cast"):
        return bool(op.inputs)
    if op.type in ("AddV2", "Add"):  # + a bias vector (nothing that broadcasts x's rows)
        return op.inputs[1].shape.rank is not None and op.inputs[1].shape.rank <= 1
    if op.type not in ("Reshape", "StridedSlice"):
        return False
    source, result = op.inputs[0].shape, op.outputs[0].shape
    if source.rank is None or result.rank is None or source.rank < 3 or result.rank < 3:
        return False
    if op.type == "Reshape":
        tail_in, tail_out = source.as_list()[2:], result.as_list()[2:]
        return None not in tail_in + tail_out and np.prod(tail_in) == np.prod(tail_out) \
            and _same_leading(op)
    if op.get_attr("shrink_axis_mask") or op.get_attr("new_axis_mask") or source.rank != result.rank:
        return False
    begin = op.inputs[1].shape.as_list()
    whole = (1 << (source.rank - 1)) - 1  # every axis but the last taken whole
    if op.get_attr("ellipsis_mask") == 1:
        return begin == [2]  # x[..., a:b]
    strides = _value(op.inputs[3])
    return not op.get_attr("ellipsis_mask") and begin == [source.rank] \
        and op.get_attr("begin_mask") & whole == whole and op.get_attr("end_mask") & whole == whole \
        and strides is not None and bool(np.all(strides == 1))


def _same_leading(op) -> bool:
    """The reshape's target keeps shape(x)[0] and shape(x)[1] of its own input (or the
    sizes are static)."""
    source, result = op.inputs[0].shape.as_list(), op.outputs[0].shape.as_list()
    if None not in source[:2] and source[:2] == result[:2]:
        return True
    target = op.inputs[1].op
    if target.type != "Pack" or len(target.inputs) < 2:
        return False
    for axis in (0, 1):
        item = _skip(target.inputs[axis]).op
        if item.type != "StridedSlice" or item.inputs[0].op.type != "Shape" \
                or item.get_attr("shrink_axis_mask") != 1:
            return False
        if _skip(item.inputs[0].op.inputs[0]) is not _skip(op.inputs[0]):
            return False
        begin = _value(item.inputs[1])
        if begin is None or begin.tolist() != [axis]:
            return False
    return True


def _partner(op, x, inv_freq):
    """The other rotation of the same attention (same rows, inv_freq of the same size), else
    None (the values are compared when it is converted)."""
    rows, found, seen = _rows(x), [], set()
    frontier = [rows.op]
    for _ in range(8):
        following = []
        for node in frontier:
            for out in node.outputs:
                for reader in out.consumers():
                    if reader.name in seen:
                        continue
                    seen.add(reader.name)
                    following.append(reader)
                    if reader is op or reader.type not in ("AddV2", "Add"):
                        continue
                    other = rotation(reader)
                    if other is not None and other[0] is not x and _rows(other[0]) is rows \
                            and other[1].shape.num_elements() == inv_freq.shape.num_elements():
                        found.append((reader, other))
        frontier = following
    return found[0] if len(found) == 1 else None


def _pair(op):
    """(lead op, its match, follower op or None, its match), the same from either op."""
    mine = rotation(op)
    if mine is None:
        return None
    other = _partner(op, *mine)
    back = None if other is None else _partner(other[0], *other[1])
    if back is None or back[0] is not op:
        return op, mine, None, None
    order = {o.name: i for i, o in enumerate(op.graph.get_operations())}
    if order[op.name] < order[other[0].name]:
        return op, mine, other[0], other[1]
    return other[0], other[1], op, mine


def _reads(op):
    """The op's own inputs (its handler's, should the match fail) and the pair's: the lead
    needs the follower's x, the follower the lead's result."""
    found = _pair(op) if op.type in ("AddV2", "Add") else None
    if found is None or found[2] is None:
        return None
    lead, _, _, theirs = found
    return [*op.inputs, theirs[0]] if op is lead else [*op.inputs, lead.outputs[0]]


@rewrite("AddV2", "Add", reads=_reads)
def match_rotary(ctx) -> bool:
    found = _pair(ctx.op)
    if found is None:
        return False
    lead, mine, follower, theirs = found
    if ctx.op is follower:
        ref = ctx.converted(lead.outputs[0])
        node = None if ref is None else ctx.ir_node(ref)
        if node is not None and node.op == "apply_rotary_pos_emb" and len(node.outputs) == 2 \
                and ref == f"{node.name}:0":
            ctx.alias(ctx.op.outputs[0], f"{node.name}:1")  # the lead emitted both
            return True
        lead, mine, follower = ctx.op, theirs, None
    x, inv_tensor = mine
    inv_freq = np.asarray(ctx.value_of(inv_tensor), "float32").reshape(-1)
    if not _checked(ctx, lead, x, inv_freq):
        return False
    if follower is not None:
        other = np.asarray(ctx.value_of(theirs[1]), "float32").reshape(-1)
        if ctx.converted(theirs[0]) is None or not np.array_equal(other, inv_freq) \
                or not _checked(ctx, follower, theirs[0], other):
            follower = None
    dim = 2 * inv_freq.size
    scope, _, leaf = ctx.scope.rpartition("/")  # the attention's: one per layer
    scope = scope or ctx.scope
    module = f"{scope}/rotary_emb" if follower is not None else f"{scope}/{leaf}"  # (one each)
    weight = ctx.channel_weight(inv_tensor, inv_freq, f"{ctx.name}/inv_freq")
    # float32 angles, their cos and sin cast to x's dtype (keras-hub's order in bfloat16)
    angles = TensorInfo([1, x.shape.as_list()[1], 1, dim], ctx.output_info(0).dtype)
    cos = ctx.emit("rotary_embedding", [ctx.ref_of(x)], attrs={"dim": dim, **_config(inv_freq)},
                   weights={"inv_freq": weight}, suffix="rotary_emb",
                   outputs=[angles, angles], scope=module)
    sin = f"{cos.rpartition(':')[0]}:1"
    inputs, outputs = [ctx.ref_of(x)], [ctx.output_info(0)]
    if follower is not None:
        inputs.append(ctx.ref_of(theirs[0]))
        outputs.append(ctx.of(follower).output_info(0))
    rotated = ctx.emit("apply_rotary_pos_emb", [*inputs, cos, sin], outputs=outputs,
                       suffix="rotated", scope=scope)
    ctx.alias(ctx.op.outputs[0], rotated)
    return True
