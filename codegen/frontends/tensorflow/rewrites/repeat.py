"""Keras 3's UpSampling2D (nearest) is `ops.repeat` along the height, then the width, which
tf.repeat writes as ExpandDims -> Tile -> Reshape: read as one nearest resize by the integer
factors (F.interpolate(scale_factor=k, mode="nearest") picks source dst // k, exactly, for
k up to 32 at any size below 2 ** 24 / k). A repeat along one axis only is
x.repeat_interleave(k, dim=axis): an image's row or column, or the key/value heads of
grouped-query attention."""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite

MAX_FACTOR = 32


def repeated(ctx, reshape):
    """(x, axis, k) when `reshape` is Reshape(Tile(ExpandDims(x, axis + 1), k on that new
    axis)) of an image x, repeating each row (axis 1) or column (axis 2) k times."""
    tile = reshape.inputs[0].op
    if reshape.type != "Reshape" or tile.type != "Tile" or tile.inputs[0].op.type != "ExpandDims":
        return None
    expand = tile.inputs[0].op
    x = expand.inputs[0]
    if x.shape.rank != 4 or reshape.outputs[0].shape.rank != 4 or not all(
            ctx.kind_of(t) == "constant" for t in (expand.inputs[1], tile.inputs[1])):
        return None
    new_axis = int(ctx.value_of(expand.inputs[1]).reshape(-1)[0]) % 5
    multiples = [int(m) for m in ctx.value_of(tile.inputs[1]).reshape(-1)]
    k = multiples[new_axis] if len(multiples) == 5 else 0
    if new_axis not in (2, 3) or not 1 < k <= MAX_FACTOR or multiples.count(1) != 4:
        return None
    return x, new_axis - 1, k


@rewrite("Reshape")
def match_repeat(ctx) -> bool:
    found = repeated(ctx, ctx.op)
    if found is None:
        return False
    x, axis, k = found
    scale = [1, 1]
    scale[axis - 1] = k
    inner = repeated(ctx, x.op)  # the other axis repeated just before: one resize
    if inner is None or inner[1] == axis:  # one axis: tf.repeat itself, which is also
        # grouped-query attention's repeat of the key/value heads ([N, T, heads, size])
        ctx.emit("repeat_interleave", [ctx.ref_of(x)], attrs={"repeats": k, "axis": axis})
        return True
    x, scale[inner[1] - 1] = inner[0], inner[2]
    ctx.emit("resize", [ctx.ref_of(x)], attrs={"mode": "nearest", "align_corners": False,
                                               "antialias": False, "size": None, "scale": scale})
    return True


@rewrite("Tile")
def match_repeat_tile(ctx) -> bool:
    """The Tile of a repeat is part of the Reshape's pattern: nothing of its own."""
    readers = ctx.op.outputs[0].consumers()
    return bool(readers) and all(repeated(ctx, reader) is not None for reader in readers)
