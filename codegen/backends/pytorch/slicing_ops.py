"""Renderers of the slicing and shape-moving ops: unbind, split, index, roll, broadcast_to,
and the mirror pads F.pad cannot write (see ops.py for Layer/Expr)."""

from __future__ import annotations

from typing import Any

from codegen.backends.pytorch.registry import Expr, renderer
from codegen.ir.graph import Graph, Node

SLICING = "ops/slicing.py.jinja"


class IndexText(tuple):
    """IR `index` items; the repr is the index text, `..., None, 1:-1:2` (only ints and None
    reach it). Leading full slices become `...` where the index names the last axis."""

    def __repr__(self) -> str:
        parts = []
        for item in self:
            if item is None:
                parts.append("None")
            elif isinstance(item, int):
                parts.append(str(int(item)))
            else:
                start, stop, step = item
                text = ":".join("" if v is None else str(int(v)) for v in (start, stop))
                parts.append(text + (f":{int(step)}" if step != 1 else ""))
        trailing = 0
        while len(parts) - trailing > 1 and parts[len(parts) - 1 - trailing] == ":":
            trailing += 1
        if trailing:  # x[:, 0, :, :] is x[:, 0]
            return ", ".join(parts[: len(parts) - trailing])
        leading = 0
        while leading < len(parts) and parts[leading] == ":":
            leading += 1
        if leading >= 2:  # x[:, :, :, 0] is x[..., 0]
            parts = ["...", *parts[leading:]]
        return ", ".join(parts)


def _dims(axes: list[int]) -> int | tuple[int, ...]:
    return axes[0] if len(axes) == 1 else tuple(axes)


@renderer("unbind", "split", "index", "roll", "broadcast_to")
def slicing_op(node: Node, graph: Graph) -> Expr:
    attrs: dict[str, Any] = {"kind": node.op}
    if node.op == "unbind":
        attrs["dim"] = node.attrs["axis"]
    elif node.op == "split":
        attrs["dim"] = node.attrs["axis"]
        if "sizes" in node.attrs:
            attrs["sizes"] = tuple(node.attrs["sizes"])
        else:
            attrs.update(kind="chunk", chunks=node.attrs["chunks"])
    elif node.op == "index":
        attrs["index"] = IndexText(item if item is None or isinstance(item, int) else tuple(item)
                                   for item in node.attrs["items"])
    elif node.op == "roll":
        attrs["shifts"] = _dims(node.attrs["shifts"])
        attrs["dims"] = _dims(node.attrs["axes"])
    else:
        attrs.update(kind="expand", shape=tuple(node.attrs["shape"]))
    return Expr(SLICING, attrs, hint={"index": "x", "broadcast_to": "x"}.get(node.op, node.op))


def mirror_pad(pads: list[list[int]], mode: str, rank: int, dtype: str) -> Expr | None:
    """A reflect / symmetric pad that F.pad cannot write (a bool or integer tensor for
    symmetric, a pad wider than one pixel, the batch axis, more than 3 padded axes): the
    `mirror_pad` helper (flipped slices, concatenated); None where F.pad can."""
    padded = list(pads)
    while padded and padded[0] == [0, 0]:
        padded.pop(0)
    count = len(padded)
    fits = 1 <= count <= 3 and rank in (count + 1, count + 2) and dtype != "bool"
    if mode == "symmetric":
        fits = fits and max(max(pair) for pair in pads) <= 1  # one pixel is "replicate"
    if fits:
        return None
    return Expr(SLICING, {"kind": "mirror_pad", "pads": tuple(tuple(pair) for pair in pads),
                          "mode": mode}, hint="pad", helpers=("mirror_pad",))
