"""A residual add joins the block it closes.

Keras' ConvNeXt (and other models written as `x = x + block(x)` with plain ops) puts the
residual add in the parent's scope, between its blocks: the blocks' scopes then hold only
the branch, the adds sit in the model's scope, and a stage's blocks cannot be factored out
as a stage (its nodes and the adds between them depend on each other both ways). A
hand-written block returns `x + branch(x)` itself, so this pass moves such an add into the
scope of the block it closes when:

- the add sits directly in a parent scope (an op, not a layer with a scope of its own),
- one operand is the only value a child scope hands out, read by the add alone,
- the other operand is the child's only input (`x + f(x)`, not `f(norm(x), mask) + x`,
  which stays where a transformer layer writes it), and the shapes are equal.

Only scopes change, so the values are the same.
"""

from __future__ import annotations

from collections import defaultdict

from codegen.ir.graph import Graph, split_ref


def absorb_residual_adds(graph: Graph) -> Graph:
    readers: dict[str, list[str]] = defaultdict(list)  # ref -> names of the nodes reading it
    for node in graph.nodes.values():
        for ref in node.inputs:
            readers[ref].append(node.name)
    outputs = {output.source for output in graph.outputs}
    for node in graph.topological_order():
        if node.op != "add" or len(node.inputs) != 2 or len(set(node.inputs)) != 2:
            continue
        for branch, skip in (node.inputs, node.inputs[::-1]):
            child = _closed_block(graph, node, branch, skip, readers, outputs)
            if child is not None:
                node.scope = child
                break
    return graph


def _closed_block(graph: Graph, add, branch: str, skip: str, readers, outputs) -> str | None:
    """The outermost scope under the add's scope that `add` closes as `skip + block(skip)`
    (of a scope holding nothing but one scope, that one: a stage of one block's block)."""
    producer = graph.nodes.get(split_ref(branch)[0])
    if producer is None or readers[branch] != [add.name] or branch in outputs:
        return None
    if _shape(graph, skip) != list(add.outputs[0].shape) or _shape(graph, branch) != list(
            add.outputs[0].shape):
        return None
    scopes = _scopes_between(add.scope, producer.scope)
    for depth, block in enumerate(scopes):
        members = {name for name, node in graph.nodes.items() if _within(node.scope, block)}
        handed_out, taken_in = set(), set()
        for name in members:
            node = graph.nodes[name]
            taken_in.update(ref for ref in node.inputs if split_ref(ref)[0] not in members)
            for index in range(len(node.outputs)):
                ref = f"{name}:{index}"
                if ref in outputs or any(reader not in members for reader in readers[ref]):
                    handed_out.add(ref)
        if handed_out == {branch} and taken_in - _constants(graph) == {skip}:
            for inner in scopes[depth + 1:]:  # a stage of one block: the block
                if any(not _within(graph.nodes[name].scope, inner) for name in members):
                    break
                block = inner
            return block
    return None


def _scopes_between(parent: str, scope: str) -> list[str]:
    """The scopes under `parent` that hold `scope`, outermost first ([] when not under)."""
    prefix = f"{parent}/" if parent else ""
    if not scope.startswith(prefix) or scope == parent:
        return []
    parts = scope[len(prefix):].split("/")
    return [prefix + "/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _within(scope: str, block: str) -> bool:
    return scope == block or scope.startswith(block + "/")


def _constants(graph: Graph) -> set[str]:
    return {f"{node.name}:0" for node in graph.nodes.values()
            if node.op == "constant" and not node.inputs}


def _shape(graph: Graph, ref: str) -> list | None:
    name, index = split_ref(ref)
    if name in graph.nodes:
        return list(graph.nodes[name].outputs[index].shape)
    found = next((graph_input for graph_input in graph.inputs if graph_input.name == name), None)
    return list(found.shape) if found is not None else None
