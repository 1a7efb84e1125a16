"""Renderers of sizes known only at run time (codegen/ir/sizes.py) and the ops that read
them: `seq_len = x.shape[1]`, `torch.arange(seq_len, device=x.device)`,
`x.reshape(batch, seq_len, 4, 8)`. A size is Python, never a tensor, and never `.item()`."""

from __future__ import annotations

from codegen.backends.pytorch.registry import TORCH_DTYPES, Expr, SliceIndex, renderer
from codegen.ir.graph import Graph, Node

SIZES = "ops/sizes.py.jinja"
ARANGE_DTYPES = {"int32": "torch.int32", "float32": "torch.float32", "float64": "torch.float64"}
SIZE_CASTS = {"float": "float", "int": "int", "uint": "int", "bool": "bool"}


class Pattern(str):
    """Python text with {0}, {1}, ... where the inputs go; built from ints only. Its repr is
    itself, so the template can fill it in (`a.pattern.format(*x)`)."""

    def __repr__(self) -> str:
        return str(self)


def _pattern(values) -> Pattern:
    """Each value an int / float (written as it is), or None / "item" (the next input) or
    "splat" (the next input's sizes, `*x.shape[:-1]`)."""
    parts, index = [], 0
    for value in values:
        if value in (None, "item", "splat"):
            parts.append(("*" if value == "splat" else "") + f"{{{index}}}")
            index += 1
        else:
            parts.append(repr(value))
    return Pattern(", ".join(parts))


def _size_hint(node: Node, graph: Graph) -> str:
    """`batch` for axis 0, `seq_len` for axis 1 of a sequence (rank 2 or 3), else `size`."""
    shape = graph.nodes.get(node.inputs[0].rpartition(":")[0])
    index = node.attrs["index"]
    if shape is not None and shape.op == "shape":
        rank = graph.tensor(shape.inputs[0]).rank
        if index in (0, -rank):
            return "batch"
        if index in (1, 1 - rank) and rank in (2, 3):
            return "seq_len"
    return "size"


def _unpack(node: Node, graph: Graph, position: int) -> bool:
    """Whether input `position` is a `sizes` node, whose tuple text may be written
    unparenthesised as the call's arguments (`x.reshape(batch, seq_len, 4, 8)`)."""
    producer = graph.nodes.get(node.inputs[position].rpartition(":")[0])
    return producer is not None and producer.op == "sizes"


@renderer("shape", "numel", "size_item", "size_slice", "sizes", "range", "fill", "tile",
          "reshape_to", "expand_to", "stack", "size_tensor",
          "repeat_interleave", "slice_to")
def size_op(node: Node, graph: Graph) -> Expr:
    attrs: dict = {"kind": node.op}
    hint = {"shape": "shape", "numel": "numel", "sizes": "shape", "range": "positions",
            "fill": "filled", "tile": "tiled", "reshape_to": "x", "expand_to": "x",
            "stack": "stacked", "size_slice": "sizes"}.get(node.op, "size")
    if node.op == "size_item":
        attrs["item"] = node.attrs["index"]  # ("index" is a SliceIndex elsewhere)
        hint = _size_hint(node, graph)
    elif node.op == "size_slice":
        attrs["index"] = SliceIndex([(node.attrs["start"], node.attrs["stop"], node.attrs["step"])])
    elif node.op == "sizes":
        parts = node.attrs["parts"]
        text = _pattern(parts)
        attrs["pattern"] = Pattern(f"({text},)" if len(parts) == 1 and parts[0] != "splat"
                                   else f"({text})")
    elif node.op == "range":
        a = node.attrs
        values = [a["start"], a["limit"], a["delta"]]
        if a["delta"] == 1:
            values = values[:2] if a["start"] != 0 else values[1:2]
        attrs["pattern"] = _pattern(values)
        attrs["dtype"] = ARANGE_DTYPES.get(a["dtype"])  # (int64: arange's own of ints)
        attrs["device"] = a["device"]
    elif node.op == "fill":
        attrs.update(value=node.attrs["value"], dtype=TORCH_DTYPES.get(node.attrs["dtype"],
                                                                       "torch.float64"),
                     device=node.attrs["device"])
    elif node.op == "tile" and len(node.inputs) == 1:
        attrs["multiples"] = tuple(node.attrs["multiples"])
    elif node.op in ("tile", "reshape_to", "expand_to"):
        attrs["unpack"] = _unpack(node, graph, 1)
    elif node.op == "stack":
        attrs["axis"] = node.attrs["axis"]
    elif node.op == "repeat_interleave":
        attrs.update(repeats=node.attrs["repeats"], axis=node.attrs["axis"])
    elif node.op == "slice_to":
        attrs["pattern"] = _slice_pattern(node.attrs["begin"], node.attrs["lengths"])
        hint = "x"
    elif node.op == "size_tensor":
        attrs.update(dtype=TORCH_DTYPES.get(node.attrs["dtype"], "torch.float64"),
                     device=len(node.inputs) == 2)
    return Expr(SIZES, attrs, hint=hint, repeat=node.op == "shape")


def _slice_pattern(begin: list[int], lengths: list[int | None]) -> Pattern:
    """`:{1}, 2:2 + {2}, 1:`: each axis from begin for its length ({n}: the n-th input, a
    size); trailing full slices left out."""
    parts, index = [], 1
    for start, length in zip(begin, lengths):
        if length is None:
            stop = f"{start} + {{{index}}}" if start else f"{{{index}}}"
            index += 1
        else:
            stop = "" if length == -1 else str(int(start) + int(length))
        parts.append(f"{int(start) or ''}:{stop}")
    while len(parts) > 1 and parts[-1] == ":":
        parts.pop()
    return Pattern(", ".join(parts))


def size_cast(node: Node, graph: Graph) -> Expr:
    """A size cast stays Python (sequence_ops.sequence_op asks here): an int cast to float
    is written as the int itself, which promotes where it meets a float tensor or number
    (`x * seq_len`; float(seq_len) would fix the size under torch.export); else int(n)."""
    target = node.attrs["dtype"]
    if target.startswith("float") and graph.tensor(node.inputs[0]).dtype.startswith("int"):
        return Expr(SIZES, {"kind": "size_cast", "function": ""}, hint="size")
    function = next(f for prefix, f in SIZE_CASTS.items() if target.startswith(prefix))
    return Expr(SIZES, {"kind": "size_cast", "function": function}, hint="size")
