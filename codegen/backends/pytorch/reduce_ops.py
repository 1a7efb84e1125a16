"""Renderers of the reductions (x.sum(dim), x.amax(dim), x.prod(dim) one axis at a time,
torch.linalg.vector_norm, x.argmax(dim)) and of TF's truncating integer division."""

from __future__ import annotations

from typing import ClassVar

from codegen.backends.pytorch.registry import Expr, renderer
from codegen.ir.graph import Graph, Node

REDUCTIONS = {"mean": "mean", "reduce_max": "amax", "reduce_min": "amin", "reduce_sum": "sum",
              "reduce_any": "any", "reduce_all": "all", "reduce_prod": "prod",
              "euclidean_norm": "vector_norm", "argmax": "argmax", "argmin": "argmin"}
SMALL_INTEGERS = {"uint8", "int8", "int16", "int32"}  # summed as int64 by torch unless told


class DType(str):
    """A torch dtype's text (`torch.int32`); only names from the fixed list reach it."""

    NAMES: ClassVar[frozenset[str]] = frozenset({"uint8", "int8", "int16", "int32", "int64"})

    def __new__(cls, name: str) -> DType:  # noqa: PYI034 - always a DType, never a subclass
        if name not in cls.NAMES:
            raise ValueError(f"not an integer dtype: {name}")
        return super().__new__(cls, f"torch.{name}")

    def __repr__(self) -> str:
        return str(self)


@renderer(*REDUCTIONS)
def reduce(node: Node, graph: Graph) -> Expr:
    axes = node.attrs["axes"]
    attrs = {"kind": REDUCTIONS[node.op], "dim": tuple(axes), "keepdim": node.attrs["keepdims"]}
    source = graph.tensor(node.inputs[0]).dtype
    if node.op in ("reduce_sum", "reduce_prod") and source in SMALL_INTEGERS:
        attrs["dtype"] = DType(source)  # TF keeps the input's dtype
    if node.op == "reduce_prod":  # torch.prod takes one axis: the last first, keeping the rest
        attrs["dims"] = tuple(sorted(axes, reverse=not node.attrs["keepdims"]))
    if node.op in ("argmax", "argmin"):
        attrs["dim"] = axes[0]
        attrs["int32"] = node.attrs["dtype"] == "int32"
    return Expr("ops/reduce.py.jinja", attrs, hint="pooled" if node.op == "mean" else "x")


@renderer("truncate_div")
def truncate_div(node: Node, graph: Graph) -> Expr:
    return Expr("ops/binary.py.jinja", {"kind": "truncate_div"}, hint="x")
