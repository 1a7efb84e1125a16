"""Sizes read from the model's inputs: a length read inside a layer, read where it came from.

keras-hub's decoders build the causal mask in every layer from the length of the
layer's residual input (`torch.ones(x.shape[1], x.shape[1]).tril()`), so each generated
attention block takes that tensor (`hidden_states_2`) only to read its length. When the
axis provably has a model input's run-time size (codegen/ir/same_size.py: the residual
stream's time axis is the token ids' time axis), the read moves to that input; the mask
then depends on the model's inputs alone, `hoist_input_masks` (run next) makes it once in
the model's forward, and the layers take it as `attention_mask`, as Hugging Face's do.

Only ops that read nothing of the tensor but sizes (and its device, shared by every input
a model's forward runs on) are redirected: a `causal_mask` (its sequence's axis 1), and a
`shape` whose every reader takes single sizes (`size_item`) the input has along the same
axes. Anything not proved keeps its read.
"""

from __future__ import annotations

from codegen.ir.graph import Graph
from codegen.ir.same_size import axis_sources, same_input

LENGTH_READS = {"causal_mask": (0, (1,))}  # op -> (input position, axes it reads the size of)


def sizes_from_inputs(graph: Graph) -> Graph:
    sources = axis_sources(graph)
    readers = graph.consumers()
    for node in graph.nodes.values():
        if node.op in LENGTH_READS:
            position, axes = LENGTH_READS[node.op]
        elif node.op == "shape" and node.inputs:
            position, axes = 0, _items_read(readers.get(f"{node.name}:0", []))
        else:
            continue
        if not axes or position >= len(node.inputs):
            continue
        target = same_input(sources, node.inputs[position], axes)
        if target is not None and (node.op != "shape" or _rank(graph, target) == _rank(
                graph, node.inputs[position])):  # (a shape vector keeps its length)
            node.inputs[position] = target
    return graph


def _items_read(readers) -> tuple[int, ...]:
    """The axes a shape vector's readers take, when each takes one size; else ()."""
    if not readers or any(reader.op != "size_item" for reader in readers):
        return ()
    axes = tuple(sorted({int(reader.attrs["index"]) for reader in readers}))
    return axes if axes and axes[0] >= 0 else ()


def _rank(graph: Graph, ref: str) -> int:
    return graph.tensor(ref).rank
