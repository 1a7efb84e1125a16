"""SpaceToBatchND and BatchToSpaceND on their own (not around a dilated conv, which
rewrites/dilated_conv.py makes one conv): a pad and a reshape/permute with a constant block
shape, paddings and crops, kept in TF's layout."""

from __future__ import annotations


def _block(ctx) -> list[int]:
    block = [int(b) for b in ctx.const(1).reshape(-1)]
    if not block or min(block) < 1:
        ctx.fail(f"block shape {block} is not supported")
    return block


def space_to_batch(ctx) -> None:
    block = _block(ctx)
    paddings = [[int(p) for p in pair] for pair in ctx.const(2).reshape(-1, 2).tolist()]
    ctx.emit("space_to_batch", [ctx.input(0)], attrs={"block_shape": block, "paddings": paddings})


def batch_to_space(ctx) -> None:
    block = _block(ctx)
    crops = [[int(c) for c in pair] for pair in ctx.const(2).reshape(-1, 2).tolist()]
    ctx.emit("batch_to_space", [ctx.input(0)], attrs={"block_shape": block, "crops": crops})
