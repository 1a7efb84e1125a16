"""A mask made once: equal computations on the model's inputs alone become one node.

Keras computes a transformer layer's attention mask from the padding mask inside each
layer (`padding_mask[:, None, :]`, a cast to bool, another axis), so the IR holds one copy
per layer and each generated layer class rebuilds it. Such a chain depends on the model's
inputs only, so each of its steps that an earlier node already computes the same way
(same op, attributes, inputs, output shape and dtype) is replaced by that node, which
moves to the innermost scope holding all its copies: the model's forward makes the mask
once and passes it down, as Hugging Face's models do. Only cheap, pure shape, cast,
comparison and logic ops take part (never a layer, a random op or a size read from a
tensor made inside a layer), so the values are the same. A decoder's causal mask takes
part once its length is read from the model's input (passes/size_reads.py, run before).
"""

from __future__ import annotations

from codegen.ir.graph import Graph

PURE = {"cast", "unsqueeze", "squeeze", "reshape", "transpose", "logical_and",
        "logical_or", "logical_not", "equal", "not_equal", "less", "greater", "less_equal",
        "greater_equal", "identity", "causal_mask"}


def hoist_input_masks(graph: Graph) -> Graph:
    derived = {f"{graph_input.name}:0" for graph_input in graph.inputs}
    seen: dict[tuple, str] = {}  # key -> the first node computing it
    for node in graph.topological_order():
        if (node.op not in PURE or node.weights or not node.inputs
                or not all(ref in derived for ref in node.inputs)):
            continue
        key = (node.op, repr(sorted(node.attrs.items())), tuple(node.inputs),
               tuple((tuple(info.shape), info.dtype) for info in node.outputs))
        first = seen.setdefault(key, node.name)
        if first != node.name:
            for index in range(len(node.outputs)):
                graph.replace_uses(f"{node.name}:{index}", f"{first}:{index}")
            kept = graph.nodes[first]
            kept.scope = common_scope(kept.scope, node.scope)
            del graph.nodes[node.name]
            continue
        derived.update(f"{node.name}:{index}" for index in range(len(node.outputs)))
    return graph


def common_scope(first: str, second: str) -> str:
    common = []
    for a, b in zip(first.split("/"), second.split("/")):
        if a != b:
            break
        common.append(a)
    return "/".join(common)

