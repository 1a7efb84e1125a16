"""The reshape renderer: x.flatten / x.unflatten where the shapes show a merge or a split of
axes (a ViT's patches [N, H, W, C] -> [N, H * W, C] is `x.flatten(1, 2)`), else x.reshape
with at most one -1 (STYLE.md: never `reshape(-1, -1, C)`)."""

from __future__ import annotations

import numpy as np

from codegen.backends.pytorch.registry import Expr, renderer
from codegen.ir.graph import Graph, Node


def _is_flatten(input_shape: list, shape: list[int]) -> bool:
    """reshape(x, [N, -1]) on a batch: the same as x.flatten(1)."""
    if len(shape) != 2 or len(input_shape) < 2 or shape[0] not in (-1, input_shape[0]):
        return False
    rest = input_shape[1:]
    return shape[1] == -1 or (None not in rest and shape[1] == int(np.prod(rest)))


def _merged(before: list, after: list) -> tuple[int, int] | None:
    """(start, end) when `after` is `before` with the known axes start..end merged into one
    (the same as x.flatten(start, end), whatever the other, possibly unknown, sizes are);
    the last such run where a size-1 axis makes several ([N, T, 1, D] is flatten(2, 3), as
    with more heads)."""
    for start in reversed(range(len(before))):
        end = start + len(before) - len(after)
        if end <= start or end >= len(before) or before[:start] != after[:start] \
                or before[end + 1:] != after[start + 1:]:
            continue
        run = before[start:end + 1]
        if None not in run and after[start] == int(np.prod(run)):
            return start, end
    return None


def _split(before: list, after: list) -> tuple[int, tuple[int, ...]] | None:
    """(axis, sizes) when `after` is `before` with one known axis split into known sizes
    (x.unflatten(axis, sizes)); the last such axis where a size 1 makes several ([N, T, D] ->
    [N, T, 1, D] is unflatten(2, (1, D)), one head split as more heads are)."""
    for axis in reversed(range(len(before))):
        count = len(after) - len(before) + 1
        sizes = after[axis:axis + count]
        if count < 2 or before[:axis] != after[:axis] or before[axis + 1:] != after[axis + count:]:
            continue
        if before[axis] is not None and None not in sizes and int(np.prod(sizes)) == before[axis]:
            return axis, tuple(sizes)
    return None


@renderer("reshape")
def reshape(node: Node, graph: Graph) -> Expr:
    """x.flatten(1) / x.flatten(start, end) / x.unflatten(axis, sizes) where the shapes show
    one (the sizes known only at run time stay where they are), else x.reshape(...) with at
    most one -1: a reshape with two cannot run, and is an error here, never code."""
    shape = list(node.attrs["shape"])
    before, after = graph.tensor(node.inputs[0]).shape, node.outputs[0].shape
    if _is_flatten(before, shape):
        return Expr("ops/tensor.py.jinja", {"kind": "reshape", "how": "flatten_batch"},
                    hint="reshape")
    merged, split = _merged(before, after), _split(before, after)
    if merged is not None:
        return Expr("ops/tensor.py.jinja", {"kind": "reshape", "how": "flatten", "args": merged},
                    hint="reshape")
    if split is not None:
        return Expr("ops/tensor.py.jinja", {"kind": "reshape", "how": "unflatten", "args": split},
                    hint="reshape")
    if shape.count(-1) > 1:  # the validator refuses this; never write code that cannot run
        raise ValueError(f"{node.name}: reshape to {shape} has more than one -1")
    return Expr("ops/tensor.py.jinja", {"kind": "reshape", "how": "reshape", "args": tuple(shape)},
                hint="reshape")
