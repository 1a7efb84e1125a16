"""ALiBi as keras-hub's AlibiBias writes it (Bloom), on attention scores [N, heads, Q, K]:
    bias = expand_dims(expand_dims(slopes[:, None] * cast(range(1 - K, 1)[None]), 1), 0)
    scores + bias                                   (K = shape(scores)[-1], slopes a constant)
is `self.alibi(scores)`, an `AlibiBias` module whose `slopes` buffer holds the per-head
slopes and whose forward is the one visible line of Hugging Face's build_alibi_tensor
style: `scores + self.slopes[:, None, None] * torch.arange(1 - key_len, 1)`. The ops are
matched loosely (to find the scores and the slopes) and the meaning is then checked on TF:
the pattern's output for scores fed at two sizes must be the formula's."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.rewrites import rewrite

PLUMBING = ("Identity", "Cast", "ExpandDims", "Reshape")
SIZES = ((1, 1, 1), (2, 3, 5))  # (batch, query length, key length) of the check


def _skip(tensor):
    while tensor.op.type in PLUMBING and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _slopes(tensor):
    """The slopes constant behind slopes * cast(range(...)) (structure only), else None."""
    op = _skip(tensor).op
    if op.type != "Mul":
        return None
    for a, b in ((0, 1), (1, 0)):
        if _skip(op.inputs[b]).op.type != "Range":
            continue
        slopes = op.inputs[a]
        while slopes.op.type in ("Identity", "ExpandDims", "Reshape") and slopes.op.inputs:
            slopes = slopes.op.inputs[0]
        if slopes.op.type == "Const" and slopes.shape.rank in (1, 2):
            return op.inputs[a]
    return None


def alibi(op):
    """(scores, slopes tensor) if `op` ends scores + the ALiBi bias, else None."""
    if op.type not in ("AddV2", "Add") or op.outputs[0].dtype.base_dtype.name != "float32":
        return None
    for a, b in ((0, 1), (1, 0)):
        scores, slopes = op.inputs[a], _slopes(op.inputs[b])
        if slopes is not None and scores.shape.rank == 4:
            return scores, slopes
    return None


def _checked(ctx, op, scores, slopes: np.ndarray) -> bool:
    heads = scores.shape.as_list()[1]
    if heads is not None and heads != slopes.size:
        return False
    rng = np.random.default_rng(0)
    for batch, queries, keys in SIZES:
        value = rng.normal(0, 1, (batch, slopes.size, queries, keys)).astype("float32")
        got = ctx.run_fed([op.outputs[0]], {scores: value})
        if got is None or got[0].shape != value.shape:
            return False
        positions = np.arange(1 - keys, 1, dtype="float32")
        if not np.array_equal(got[0], value + slopes[:, None, None] * positions):
            return False
    return True


def _reads(op):
    found = alibi(op)
    return None if found is None else list(op.inputs)


@rewrite("AddV2", "Add", reads=_reads)
def match_alibi(ctx) -> bool:
    found = alibi(ctx.op)
    if found is None:
        return False
    scores, slopes_tensor = found
    slopes = np.asarray(ctx.value_of(slopes_tensor), "float32").reshape(-1)
    if not _checked(ctx, ctx.op, scores, slopes):
        return False
    weight = ctx.channel_weight(slopes_tensor, slopes, f"{ctx.name}/slopes")
    ctx.emit("alibi_bias", [ctx.ref_of(scores)], attrs={"num_heads": int(slopes.size)},
             weights={"slopes": weight})
    return True
