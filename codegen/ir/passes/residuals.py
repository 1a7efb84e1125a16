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

from codegen.ir.graph import Graph, split_ref


def absorb_residual_adds(graph: Graph) -> Graph:
    readers = {ref: [node.name for node in nodes] for ref, nodes in graph.consumers().items()}
    for output in graph.outputs:
        readers.setdefault(output.source, []).append("")  # (read by the model's caller)
    constants = {f"{node.name}:0" for node in graph.nodes.values()
                 if node.op == "constant" and not node.inputs}
    for node in graph.topological_order():
        if node.op != "add" or len(node.inputs) != 2 or len(set(node.inputs)) != 2:
            continue
        for branch, skip in (node.inputs, node.inputs[::-1]):
            block = _closed_block(graph, node, branch, skip, readers, constants)
            if block is not None:
                node.scope = block
                break
    return graph


def _closed_block(graph: Graph, add, branch: str, skip: str, readers: dict,
                  constants: set[str]) -> str | None:
    """The outermost scope under the add's scope that `add` closes as `skip + block(skip)`
    (of a scope holding nothing but one scope, that one: a stage of one block's block)."""
    producer = graph.nodes.get(split_ref(branch)[0])
    if producer is None or readers.get(branch) != [add.name]:
        return None
    shape = list(add.outputs[0].shape)
    if list(graph.tensor(skip).shape) != shape or list(graph.tensor(branch).shape) != shape:
        return None
    scopes = _scopes_between(add.scope, producer.scope)
    for depth, block in enumerate(scopes):
        members = {name for name, node in graph.nodes.items() if _within(node.scope, block)}
        handed_out, taken_in = set(), set()
        for name in members:
            node = graph.nodes[name]
            taken_in.update(ref for ref in node.inputs if split_ref(ref)[0] not in members)
            handed_out.update(ref for ref in (f"{name}:{i}" for i in range(len(node.outputs)))
                              if any(reader not in members for reader in readers.get(ref, ())))
        if handed_out == {branch} and taken_in - constants == {skip}:
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
