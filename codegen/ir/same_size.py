"""Same run-time size: which graph input axis a tensor's axis provably has the size of.

A decoder's layers read the sequence length from a tensor made inside the layer (Keras
builds the causal mask from the residual stream's `shape[1]`), so the generated layer
takes that tensor only to read its length. Where the axis provably came from a model
input's axis, the length can be read there instead; the mask then depends on the model's
inputs alone and is made once in the model's forward (passes/size_reads.py, hoist.py).

`axis_sources(graph)` walks the graph once, in topological order, and gives every tensor
a list with, per axis, the `(graph input ref, axis)` whose run-time size it equals, or
None where that is not proved. Only the ops with a rule here pass an axis on; anything
else (and every size value) ends the trail, so an unknown op can only make the answer
None, never wrong. The rules:
- elementwise ops, norms, softmax, casts: output shape = input 0's shape;
- broadcasting binary ops: an axis is kept when every input that has it either has the
  same source or a static size 1 there (aligned from the right, numpy's rule);
- linear: every axis but the last; flatten / unflatten at `axis`: the axes before it;
  unflatten_as: the split axes are the second input's, read at run time;
- embedding (a gather of table rows): the ids' axes, then the table's row;
- slice: the axes it takes whole; concat: every other axis (concatenated tensors agree
  there: any input's source proves it);
- attention: the query's batch and time axes; apply_rotary_pos_emb: output i = input i.
"""

from __future__ import annotations

from codegen.ir.graph import Graph
from codegen.resources import op_catalogue

Source = tuple[str, int] | None
SAME_SHAPE = {"rms_norm", "layer_norm", "softmax"}  # besides the catalogue's elementwise ops
LEADING = {"linear": lambda node, rank: rank - 1,  # op -> how many leading axes it keeps
           "flatten": lambda node, rank: node.attrs["axis"],
           "unflatten": lambda node, rank: node.attrs["axis"],
           "attention": lambda node, rank: 2}
WHOLE = ([None, None, 1], [0, None, 1])  # a slice's part that keeps the axis whole


def axis_sources(graph: Graph) -> dict[str, list[Source]]:
    """tensor ref -> per axis, the graph input axis with the same run-time size, or None."""
    catalogue = op_catalogue()
    sources: dict[str, list[Source]] = {}
    for graph_input in graph.inputs:
        ref = f"{graph_input.name}:0"
        sources[ref] = [(ref, axis) for axis in range(len(graph_input.shape))]
    for node in graph.topological_order():
        layout = (catalogue.get(node.op) or {}).get("layout")
        for index, info in enumerate(node.outputs):
            found = None if info.size else _rule(graph, node, index, info.rank, layout, sources)
            sources[f"{node.name}:{index}"] = found or [None] * info.rank
    return sources


def same_input(sources: dict[str, list[Source]], ref: str, axes: tuple[int, ...]) -> str | None:
    """The graph input ref with `ref`'s run-time sizes along the same axes `axes` (so
    `ref.shape[d]` may be read as `input.shape[d]`), else None."""
    found = sources.get(ref) or []
    if not axes or any(axis >= len(found) or found[axis] is None for axis in axes):
        return None
    target = found[axes[0]][0]
    return target if all(found[axis] == (target, axis) for axis in axes) else None


def _rule(graph: Graph, node, index: int, rank: int, layout, sources) -> list[Source] | None:
    inputs = [sources.get(ref) for ref in node.inputs]
    first = inputs[0] if inputs else None
    if first is None:
        return None
    if node.op in SAME_SHAPE or layout == "elementwise":
        return list(first) if index == 0 and len(first) == rank else None
    if node.op == "apply_rotary_pos_emb":  # (q, k, cos, sin) -> (q, k); (x, cos, sin) -> x
        kept = inputs[index]
        return list(kept) if kept is not None and len(kept) == rank else None
    if layout == "broadcast" and index == 0:
        return [_broadcast(graph, node, axis, rank, inputs) for axis in range(rank)]
    if node.op in LEADING and index == 0:  # (each keeps its input's leading axes as they are)
        count = LEADING[node.op](node, rank)
        if count <= min(rank, len(first)):
            return list(first[:count]) + [None] * (rank - count)
        return None
    if node.op == "slice" and index == 0 and len(first) == rank == len(node.attrs["axes"]):
        return [source if list(part) in WHOLE else None
                for source, part in zip(first, node.attrs["axes"])]
    if node.op == "concat" and index == 0:
        return _concat(node.attrs["axis"] % rank if rank else 0, rank, inputs)
    if node.op == "unflatten_as" and index == 0:
        return _unflatten_as(node, rank, first, inputs[1] if len(inputs) > 1 else None)
    if node.op == "embedding" and index == 0 and len(first) == rank - 1:
        return list(first) + [None]
    return None


def _unflatten_as(node, rank: int, first: list[Source], sizes) -> list[Source] | None:
    """x's axis split into the second input's axes [axis, axis + count), read at run time
    (a mixture of experts' [N * T, C] back to [N, T, C]): those axes are the second's."""
    axis, count = node.attrs["axis"], node.attrs["count"]
    if sizes is None or len(sizes) < axis + count or len(first) != rank - count + 1:
        return None
    return list(first[:axis]) + list(sizes[axis:axis + count]) + list(first[axis + 1:])


def _concat(axis: int, rank: int, inputs) -> list[Source] | None:
    """Concatenated tensors have equal sizes on every other axis (no broadcasting), so any
    input's source proves the output's there."""
    if any(found is None or len(found) != rank for found in inputs):
        return None
    return [None if d == axis else next((f[d] for f in inputs if f[d] is not None), None)
            for d in range(rank)]


def _broadcast(graph: Graph, node, axis: int, rank: int, inputs) -> Source:
    """The output axis's source: every input having the axis agrees, or is static 1 there."""
    found: set[Source] = set()
    for ref, source in zip(node.inputs, inputs):
        shape = graph.tensor(ref).shape
        own = axis - (rank - len(shape))
        if own < 0:
            continue  # (numpy aligns from the right: this input has no such axis)
        if source is None or len(source) != len(shape):
            return None
        if shape[own] == 1:
            continue
        found.add(source[own])
    return found.pop() if len(found) == 1 else None
