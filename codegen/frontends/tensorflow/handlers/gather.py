"""Indexing ops on ordinary tensors: GatherV2 (outside an embedding, which embedding.py
takes), GatherNd, ScatterNd, TensorScatterUpdate/Add/Sub/Max/Min, the segment reductions
(Segment* and UnsortedSegment*), Where with one input (torch.nonzero) and TopKV2 (a stable
sort, as TF orders ties: the lower index first)."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler
from codegen.ir.graph import TensorInfo

INTEGERS = ("int32", "int64")


def _static(ctx, shape, what: str) -> list[int]:
    if shape is None or None in shape:
        ctx.fail(f"{what} must have a known shape, it is {shape}")
    return [int(size) for size in shape]


def gather_tensor(ctx) -> None:
    """params gathered along `axis` (GatherV2 of run-time params, or of constant ids)."""
    rank = ctx.rank(0)
    if rank is None or ctx.rank(1) is None:
        ctx.fail("a gather needs params and indices of known rank")
    axis = int(ctx.const(2).reshape(-1)[0]) if ctx.op.type == "GatherV2" else 0
    batch_dims = int(ctx.attr("batch_dims", 0) or 0)
    batch_dims = batch_dims + ctx.rank(1) if batch_dims < 0 else batch_dims
    axis = axis + rank if axis < 0 else axis
    if ctx.rank(1) == 0 and ctx.is_const(1) and not batch_dims:  # one index: x[:, 2]
        ctx.emit("select", [ctx.input(0)], attrs={"axis": axis, "index": int(ctx.const(1))})
        return
    attrs = {"axis": axis, "batch_dims": batch_dims}
    if batch_dims:  # torch.gather along axis: the ids laid out as params (any batch size)
        attrs.update(rank=rank, ids_rank=ctx.rank(1))
        if ctx.rank(1) > batch_dims + 1:
            sizes = ctx.input_info(1).shape[batch_dims:]
            attrs["sizes"] = _static(ctx, sizes, "the indices' axes after the batch dims")
    ctx.emit("gather", [ctx.input(0), ctx.input(1)], attrs=attrs)


@handler("GatherNd", ir="gather_nd")
def gather_nd(ctx) -> None:
    if ctx.attr("batch_dims", 0):
        ctx.fail("GatherNd with batch_dims is not supported")
    _depth(ctx, 1)
    ctx.emit("gather_nd", [ctx.input(0), ctx.input(1)])


def _depth(ctx, index: int) -> int:
    shape = ctx.input_info(index).shape
    if ctx.rank(index) in (None, 0) or shape[-1] is None:
        ctx.fail("the indices' last axis (how many leading axes an index names) must be known")
    return int(shape[-1])


def _scatter_attrs(ctx, reduce: str, shape: list, ids: int, updates: int) -> dict:
    depth = _depth(ctx, ids)
    batch = ctx.rank(ids) - 1  # the updates' leading axes, one per index
    attrs = {"reduce": reduce, "depth": depth, "batch": batch}
    if reduce in ("max", "min"):  # scatter_reduce over the scattered axes flattened
        sizes = _static(ctx, shape[:depth], "the scattered axes")
        attrs["strides"] = [int(np.prod(sizes[i + 1:], dtype=np.int64)) for i in range(depth)]
        attrs["rest"] = len(shape) - depth  # the updates' trailing axes
    return attrs


@handler("ScatterNd", ir="scatter_nd", static=(2,))
def scatter_nd(ctx) -> None:
    """zeros(shape) with the updates added at the indices (repeated indices add up)."""
    shape = [int(size) for size in ctx.const(2).reshape(-1)]
    attrs = _scatter_attrs(ctx, "add", shape, 0, 1)
    ctx.emit("scatter_nd", [ctx.input(0), ctx.input(1)], attrs={**attrs, "shape": shape})


TENSOR_SCATTER = {"TensorScatterUpdate": "update", "TensorScatterAdd": "add",
                  "TensorScatterSub": "sub", "TensorScatterMax": "max", "TensorScatterMin": "min"}


@handler(*TENSOR_SCATTER, ir="scatter_nd")
def tensor_scatter(ctx) -> None:
    reduce = TENSOR_SCATTER[ctx.op.type]
    if ctx.output_info(0).dtype == "bool" and reduce != "update":
        ctx.fail(f"{ctx.op.type} of booleans is not supported")
    attrs = _scatter_attrs(ctx, reduce, ctx.input_info(0).shape, 1, 2)
    ctx.emit("scatter_nd", [ctx.input(0), ctx.input(1), ctx.input(2)], attrs=attrs)


SEGMENTS = {"SegmentSum": "sum", "SegmentMean": "mean", "SegmentMax": "amax",
            "SegmentMin": "amin", "SegmentProd": "prod", "UnsortedSegmentSum": "sum",
            "UnsortedSegmentMax": "amax", "UnsortedSegmentMin": "amin",
            "UnsortedSegmentProd": "prod"}


def _empty_value(reduce: str, dtype: str, sorted_ids: bool) -> float | int:
    """What TF gives a segment no id names: 1 for a product, else 0 for the sorted ops; for
    the unsorted ones the reduction's identity (the lowest value for a max, the highest for
    a min)."""
    if reduce == "prod":
        return 1
    if sorted_ids or reduce in ("sum", "mean"):
        return 0
    info = np.iinfo(dtype) if dtype in INTEGERS else np.finfo(dtype)
    value = info.min if reduce == "amax" else info.max
    return int(value) if dtype in INTEGERS else float(value)


@handler(*SEGMENTS, ir="segment_reduce", static=lambda op: (2,) if len(op.inputs) == 3 else ())
def segment(ctx) -> None:
    """One output row per segment: the rows of data with that segment id reduced."""
    reduce, dtype = SEGMENTS[ctx.op.type], ctx.output_info(0).dtype
    sorted_ids = not ctx.op.type.startswith("Unsorted")
    if dtype not in ("float32", "float64", *INTEGERS):
        ctx.fail(f"{ctx.op.type} of {dtype} is not supported")
    if reduce == "mean" and dtype not in ("float32", "float64"):
        ctx.fail("SegmentMean of integers is not supported")
    if sorted_ids:
        if not ctx.is_const(1):
            ctx.fail("the number of segments of a sorted segment reduction is its last id + 1, "
                     "known only at run time; use UnsortedSegment* with num_segments")
        ids = ctx.const(1).reshape(-1)
        count = int(ids[-1]) + 1 if ids.size else 0
    else:
        count = int(ctx.const(2).reshape(-1)[0])
    if ctx.rank(0) is None or ctx.rank(1) is None:
        ctx.fail("a segment reduction needs data and ids of known rank")
    attrs = {"reduce": reduce, "num_segments": count, "ids_rank": ctx.rank(1),
             "rank": ctx.rank(0), "empty": _empty_value(reduce, dtype, sorted_ids)}
    ctx.emit("segment_reduce", [ctx.input(0), ctx.input(1)], attrs=attrs)


@handler("Where", ir="nonzero")
def where(ctx) -> None:
    """tf.where(condition): the coordinates of its true (nonzero) entries, int64 [n, rank]."""
    if ctx.rank(0) is None:
        ctx.fail("Where of unknown rank is not supported")
    ctx.emit("nonzero", [ctx.input(0)])


@handler("TopKV2", "TopK", ir="sort", static=lambda op: (1,) if op.type == "TopKV2" else ())
def top_k(ctx) -> None:
    """The k largest along the last axis, largest first, ties by lower index (TF's order):
    a stable descending sort, cut to k; the indices int32 as TF's."""
    k = int(ctx.const(1).reshape(-1)[0]) if ctx.op.type == "TopKV2" else int(ctx.attr("k"))
    rank = ctx.rank(0)
    if rank is None:
        ctx.fail("TopK of unknown rank is not supported")
    values, indices = ctx.op.outputs
    shape = ctx.input_info(0).shape
    infos = [TensorInfo(list(shape), values.dtype.name), TensorInfo(list(shape), "int64")]
    ref = ctx.emit("sort", [ctx.input(0)], attrs={"axis": rank - 1, "descending": True},
                   suffix="sort", outputs=infos)
    cut = [[None, None, 1]] * (rank - 1) + [[None, k, 1]]
    sorted_values = ctx.emit("slice", [ref], attrs={"axes": cut}, suffix="values",
                             outputs=[ctx.output_info(0)])
    sorted_indices = ctx.emit("slice", [f"{ref[:-2]}:1"], attrs={"axes": cut}, suffix="top",
                              outputs=[TensorInfo(ctx.output_info(1).shape, "int64")])
    ctx.alias(values, sorted_values)
    if ctx.output_info(1).dtype != "int64":
        sorted_indices = ctx.emit("cast", [sorted_indices], attrs={"dtype": "int32"},
                                  suffix="indices", outputs=[ctx.output_info(1)])
    ctx.alias(indices, sorted_indices)
