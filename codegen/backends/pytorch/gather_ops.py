"""Renderers of the indexing and matrix ops: gathers as indexing (`x[:, ids]`) or
torch.gather, gather_nd / scatter_nd as `x[ids.unbind(-1)]` / `index_put`, segment
reductions as `index_add` / `scatter_reduce` on a fresh tensor, nonzero, a stable sort,
diagonals, tril / triu and local response normalisation."""

from __future__ import annotations

from decimal import Decimal

from codegen.backends.pytorch.registry import CAST_METHODS, Expr, _float, renderer
from codegen.ir.graph import Graph, Node

GATHER = "ops/gather.py.jinja"


class Leading(int):
    """How many axes come before the indexed one; its repr is their full slices (`:, :, `)."""

    def __repr__(self) -> str:
        return ":, " * int(self)


@renderer("gather")
def gather(node: Node, graph: Graph) -> Expr:
    attrs = node.attrs
    if not attrs["batch_dims"]:  # x[:, ids]: numpy's indexing is TF's gather
        return Expr(GATHER, {"kind": "take", "leading": Leading(attrs["axis"])}, hint="x")
    batch_dims, axis, ids_rank = attrs["batch_dims"], attrs["axis"], attrs["ids_rank"]
    # the ids [batch..., count] (flattened, or one per batch entry), unit axes where the
    # params have others, expanded to them: torch.gather's index
    unit = GatherIndex(batch_dims, axis - batch_dims, attrs["rank"] - axis - 1)
    return Expr(GATHER, {"kind": "gather", "axis": axis, "batch_dims": batch_dims,
                         "layout": "one" if ids_rank == batch_dims else
                         "flat" if ids_rank > batch_dims + 1 else "row",
                         "unit": unit, "plain": unit.plain, "sizes": tuple(attrs.get("sizes", ())),
                         "after": axis + 1}, hint="x")


class GatherIndex(tuple):
    """(batch axes, unit axes before, unit axes after); its repr is the index that adds the
    unit axes around the ids' last one (`:, None, :, None`)."""

    def __new__(cls, batch: int, before: int, after: int):
        return super().__new__(cls, (int(batch), int(before), int(after)))

    @property
    def plain(self) -> bool:
        return self[1] == self[2] == 0

    def __repr__(self) -> str:
        return ", ".join([":"] * self[0] + ["None"] * self[1] + [":"] + ["None"] * self[2])


@renderer("gather_nd", "nonzero", "matrix_diag", "diagonal", "set_diagonal")
def indexing(node: Node, graph: Graph) -> Expr:
    attrs: dict = {"kind": node.op}
    if "offset" in node.attrs:
        attrs["offset"] = node.attrs["offset"]
    return Expr(GATHER, attrs, hint={"nonzero": "coordinates", "diagonal": "diagonal"}
                .get(node.op, "x"))


@renderer("scatter_nd")
def scatter_nd(node: Node, graph: Graph) -> Expr:
    attrs = node.attrs
    reduce = attrs["reduce"]
    values: dict = {"kind": "scatter_reduce" if reduce in ("max", "min") else "index_put",
                    "reduce": {"max": "amax", "min": "amin"}.get(reduce, reduce),
                    "fresh": "shape" in attrs}
    if "shape" in attrs:
        values["shape"] = tuple(attrs["shape"])
    if reduce in ("max", "min"):
        values.update(last=attrs["depth"] - 1, strides=tuple(attrs["strides"]),
                      view=(-1,) + (1,) * attrs["rest"], batch=attrs["batch"])
    return Expr(GATHER, values, hint="x")


@renderer("segment_reduce")
def segment_reduce(node: Node, graph: Graph) -> Expr:
    attrs = node.attrs
    trailing = attrs["rank"] - attrs["ids_rank"]
    empty = attrs["empty"]
    plain_sum = attrs["reduce"] == "sum" and empty == 0  # index_add into zeros
    return Expr(GATHER, {"kind": "segment_sum" if plain_sum else "segment",
                         "reduce": attrs["reduce"], "count": attrs["num_segments"],
                         "last": attrs["ids_rank"] - 1, "start": attrs["ids_rank"],
                         "view": (-1,) + (1,) * trailing,
                         "empty": empty if isinstance(empty, int) else float(empty)},
                hint="segments")


@renderer("sort")
def sort(node: Node, graph: Graph) -> Expr:
    return Expr(GATHER, {"kind": "sort", "dim": node.attrs["axis"],
                         "descending": node.attrs["descending"]}, hint="top_k")


@renderer("band_part")
def band_part(node: Node, graph: Graph) -> Expr:
    """A bound of null is the next input, a size known at run time: x.triu(-window)."""
    bounds, sized = {}, iter(range(1, len(node.inputs)))
    for key in ("lower", "upper"):
        if key in node.attrs:
            value = node.attrs[key]
            bounds[key] = value if value is not None else f"input{next(sized)}"
    return Expr(GATHER, {"kind": "band_part", "lower": bounds.get("lower"),
                         "upper": bounds.get("upper")}, hint="band")


@renderer("lrn")
def lrn(node: Node, graph: Graph) -> Expr:
    """F.local_response_norm averages the squares over the window (size = 2r + 1) where TF
    sums them: its alpha is TF's times the size (in decimal: 1e-4 * 5 is written 0.0005)."""
    attrs = node.attrs
    size = 2 * attrs["depth_radius"] + 1
    return Expr(GATHER, {"kind": "lrn", "size": size, "alpha": float(Decimal(str(_float(attrs["alpha"]))) * size),
                         "beta": _float(attrs["beta"]), "k": _float(attrs["bias"]),
                         "channels_last": attrs["axis"] != 1}, hint="x")


def one_hot(node: Node) -> Expr:
    """on where the id equals the position along the new axis, off elsewhere (ids outside
    [0, depth) give a row of off, as TF's): a comparison with arange(depth)."""
    attrs = node.attrs
    dtype = attrs["dtype"]
    on, off = attrs["on"], attrs["off"]
    if dtype == "float32":  # the shortest literal of the float32 value
        on, off = _float(on), _float(off)
    plain = (on, off) in ((1, 0), (True, False))
    # torch.where of two Python numbers is float32 (floats) or int64 (integers)
    natural = "float32" if isinstance(on, float) else "int64" if not isinstance(on, bool) else "bool"
    method = None if (plain and dtype == "bool") or (not plain and dtype == natural) \
        else CAST_METHODS[dtype]
    rank = len(node.outputs[0].shape) - 1
    return Expr(GATHER, {"kind": "one_hot", "depth": attrs["depth"], "plain": plain,
                         "on": on, "off": off, "method": method,
                         "axis": attrs["axis"] if attrs["axis"] != rank else None},
                hint="one_hot")


@renderer("invert_permutation")
def invert_permutation(node: Node, graph: Graph) -> Expr:
    return Expr(GATHER, {"kind": "invert_permutation"}, hint="inverse")


@renderer("reverse_sequence")
def reverse_sequence(node: Node, graph: Graph) -> Expr:
    attrs = {"kind": "reverse_sequence", "seq_dim": node.attrs["seq_dim"],
             "batch_dim": node.attrs["batch_dim"]}
    return Expr(GATHER, attrs, hint="reversed", helpers=("reverse_sequence",))


@renderer("unique")
def unique(node: Node, graph: Graph) -> Expr:
    attrs = {"kind": "unique", "counts": node.attrs["counts"],
             "int64": [info.dtype for info in node.outputs[1:2]] == ["int64"]}  # else int32
    return Expr(GATHER, attrs, hint="unique", helpers=("unique_in_order",))
