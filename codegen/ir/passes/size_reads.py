"""Sizes read from the model's inputs: a length read inside a layer, read where it came from.

keras-hub's decoders build the causal mask in every layer from the length of the
layer's residual input (`torch.ones(x.shape[1], x.shape[1]).tril()`), so each generated
attention block takes that tensor (`hidden_states_2`) only to read its length. When the
axis provably has a model input's run-time size (codegen/ir/same_size.py: the residual
stream's time axis is the token ids' time axis), the read moves to that input; the mask
then depends on the model's inputs alone, `hoist_input_masks` (run next) makes it once in
the model's forward, and the layers take it as `attention_mask`, as Hugging Face's do.

A `causal_mask` reads nothing of its sequence but the length (axis 1) and the device
(shared by every input a model's forward runs on). The masks that would become one (same
attributes, same padding) move together or not at all: were only some layers' reads
proved, the layers would differ and no longer be one class called in a loop.
"""

from __future__ import annotations

from codegen.ir.graph import Graph
from codegen.ir.same_size import axis_sources, same_input

LENGTH_READS = {"causal_mask": (0, (1,))}  # op -> (input position, axes it reads the size of)


def sizes_from_inputs(graph: Graph) -> Graph:
    sources = axis_sources(graph)
    groups: dict[tuple, list] = {}
    for node in graph.nodes.values():
        if node.op in LENGTH_READS and len(node.inputs) > LENGTH_READS[node.op][0]:
            position = LENGTH_READS[node.op][0]
            key = (node.op, repr(sorted(node.attrs.items())),
                   tuple(ref for index, ref in enumerate(node.inputs) if index != position))
            groups.setdefault(key, []).append(node)
    for nodes in groups.values():
        position, axes = LENGTH_READS[nodes[0].op]
        targets = {same_input(sources, node.inputs[position], axes) for node in nodes}
        if len(targets) == 1 and None not in targets:
            target = targets.pop()
            for node in nodes:
                node.inputs[position] = target
    return graph
