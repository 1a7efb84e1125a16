"""Rotary cos and sin made once: one `RotaryEmbedding` in the model, its angles passed down.

keras-hub computes the rotary angles inside every layer's attention from the query's
length, so the IR holds one `rotary_embedding` per layer (each with its own copy of the
same `inv_freq`) and each generated attention block makes `cos, sin` again. Hugging Face's
Llama makes them once in the model's forward (`position_embeddings = self.rotary_emb(...)`)
and passes them to every layer. The module reads nothing of its input but the length
(axis 1), the dtype and the device, so the copies give the same values when they agree
on the attributes, the buffer's values and the input's dtype, and their inputs' axis 1
provably has the same model input's size (codegen/ir/same_size.py). Such copies become the
first of them, which moves to the scope holding them all and reads a tensor already there
with that length and dtype (a model input, or the token embedding's output); the others'
buffers leave the weight table. Anything not proved stays as it is.
"""

from __future__ import annotations

from codegen.ir.graph import Graph
from codegen.ir.passes.hoist import common_scope
from codegen.ir.same_size import axis_sources


def hoist_rotary(graph: Graph) -> Graph:
    sources = axis_sources(graph)
    order = graph.topological_order()
    groups: dict[tuple, list] = {}
    for node in order:
        key = _key(graph, node)
        if key is not None:
            groups.setdefault(key, []).append(node)
    for (*_, dtype), copies in groups.items():
        lengths = {_length(sources, node) for node in copies}
        if len(copies) < 2 or len(lengths) != 1 or None in lengths:
            continue  # (all or none: layers that differ would no longer be one class)
        scope = _parent(copies[0].scope)
        for other in copies[1:]:
            scope = common_scope(scope, _parent(other.scope))
        target = _tensor_at(graph, order, sources, lengths.pop(), dtype, scope, copies[0])
        if target is None or not scope:
            continue
        kept = copies[0]
        kept.inputs[0] = target
        kept.scope = f"{scope}/{kept.scope.rpartition('/')[2]}"
        for other in copies[1:]:
            for index in range(len(other.outputs)):
                graph.replace_uses(f"{other.name}:{index}", f"{kept.name}:{index}")
            del graph.nodes[other.name]
        read = {weight for _, _, weight in graph.iter_weight_refs()}
        for other in copies[1:]:
            if other.weights["inv_freq"] not in read:
                graph.weights.pop(other.weights["inv_freq"], None)
    return graph


def _key(graph: Graph, node) -> tuple | None:
    """What two rotary embeddings must share to give the same cos and sin (their input's
    length aside), else None; the input's dtype last."""
    if node.op != "rotary_embedding" or len(node.inputs) != 1 or "inv_freq" not in node.weights:
        return None
    weight = graph.weights.get(node.weights["inv_freq"])
    if weight is None:
        return None
    return (repr(sorted(node.attrs.items())), weight.sha256, weight.dtype,
            repr(weight.transforms), tuple(weight.shape),
            repr([(info.shape, info.dtype) for info in node.outputs]),
            graph.tensor(node.inputs[0]).dtype)


def _length(sources, node):
    """The graph input axis the rotary embedding's input has the length (axis 1) of."""
    found = sources.get(node.inputs[0]) or []
    return found[1] if len(found) > 1 else None


def _tensor_at(graph: Graph, order, sources, length, dtype: str, scope: str, first):
    """The first tensor (before `first`) of dtype `dtype` whose axis 1 has the size
    `length` and that the forward of `scope` holds: a model input, or an output of a node
    in that scope or of a one-node layer directly in it (nn.Embedding); else None."""
    for graph_input in graph.inputs:
        ref = f"{graph_input.name}:0"
        if graph_input.dtype == dtype and sources[ref][1:2] == [length]:
            return ref
    layers: dict[str, int] = {}
    for node in order:
        layers[node.scope] = layers.get(node.scope, 0) + 1
        for prefix in _ancestors(node.scope):
            layers[prefix] = layers.get(prefix, 0) + 2  # (a scope holding others: no layer)
    for node in order:
        if node is first:
            return None
        held = node.scope == scope or (_parent(node.scope) == scope and layers[node.scope] == 1)
        for index, info in enumerate(node.outputs):
            ref = f"{node.name}:{index}"
            if held and not info.size and info.dtype == dtype and sources[ref][1:2] == [length]:
                return ref
    return None


def _parent(scope: str) -> str:
    return scope.rpartition("/")[0]


def _ancestors(scope: str) -> list[str]:
    parts = scope.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]
