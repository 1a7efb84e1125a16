"""A block reused across depth (ALBERT): which shared layers' calls stay in their blocks.

TF1 `variable_scope(reuse=True)` or a Keras layer object called N times puts the same
computation, on the same weights, in N sibling scopes (`layer`, `layer_1`, `layer_2`;
`group_0_inner_layer_0_1`, `_3`, `_5`), each reading the one before's output. Written as
N copies of the layer calls in the parent (structure.py's shared leaves) the forward gets
long and its locals `_2`, `_3`; written as one module called in a loop it reads as
ALBERT's authors wrote it. Those sibling scopes are *instances* here when

- each holds exactly one call of every shared layer in it, and all of that layer's calls
  are in the instances (so one module holds the weights, however the loop is written);
- their nodes match one to one in topological order: the same op rendering (a layer: the
  same weights and arguments; an expression: the same template and attributes) and the
  same wiring inside the instance;
- they chain: each makes one tensor that the one after reads and nothing else does (the
  last: anything), and otherwise reads the same tensors as the one before (a mask).

Their layers' calls then stay in their own scopes, the scopes become modules of one class,
and modules.py writes the run as `for _ in range(N): hidden = self.layer(hidden, mask)`.
"""

from __future__ import annotations

from codegen.backends.pytorch.ops import Layer
from codegen.ir.graph import Node, split_ref


def depth_instances(order: list[Node], renders: dict, groups: list[list[Node]],
                    results: set[str]) -> dict[str, str]:
    """The calls (among `groups`, each the calls of one shared layer) that stay in their
    instance scope, each with that scope; the rest are gathered in one leaf as before.
    `results`: the model's output tensors."""
    candidates: dict[tuple[str, ...], list[list[Node]]] = {}
    for calls in groups:
        instances = _instance_scopes(calls)
        if instances is not None:
            candidates.setdefault(instances, []).append(calls)
    shared = {node.name for calls in groups for node in calls}
    kept: dict[str, str] = {}
    for instances, members in candidates.items():
        nodes = [[n for n in order if _inside(n.scope, scope)] for scope in instances]
        mine = {node.name: scope for calls in members
                for node, scope in zip(calls, instances)}
        inside = {node.name for group in nodes for node in group}
        if any(name in shared and name not in mine for name in inside):
            continue  # another shared layer's calls are not one per instance
        if _matching(nodes, renders) and _chained(nodes, order, results):
            kept.update(mine)
    return kept


def _inside(scope: str, instance: str) -> bool:
    return scope == instance or scope.startswith(instance + "/")


def _instance_scopes(calls: list[Node]) -> tuple[str, ...] | None:
    """The sibling scopes, one per call, below the calls' common scope (the calls' own
    scopes or scopes around them); None when two calls share one."""
    parts = [node.scope.split("/") for node in calls]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    instances = tuple("/".join(p[:common + 1]) for p in parts)
    return instances if len(set(instances)) == len(calls) else None


def _node_key(node: Node, renders: dict) -> tuple:
    render = renders[node.name]
    if isinstance(render, Layer):
        return ("layer", node.op, render.template, render.cls, repr(sorted(render.args.items())),
                tuple(render.state.items()))
    return ("expr", node.op, render.template, repr(sorted(render.attrs.items())))


def _shape(nodes: list[Node], renders: dict) -> tuple:
    """The instance's nodes and their wiring (inside, or the n-th tensor read from outside)."""
    local = {node.name: index for index, node in enumerate(nodes)}
    outside = _reads(nodes)
    parts = []
    for node in nodes:
        wiring = []
        for ref in node.inputs:
            name, index = split_ref(ref)
            wiring.append((local[name], index) if name in local else ("in", outside.index(ref)))
        parts.append((_node_key(node, renders), tuple(wiring)))
    return tuple(parts)


def _reads(nodes: list[Node]) -> list[str]:
    """The tensors the instance reads from outside, by first use."""
    names = {node.name for node in nodes}
    reads: list[str] = []
    for node in nodes:
        for ref in node.inputs:
            if split_ref(ref)[0] not in names and ref not in reads:
                reads.append(ref)
    return reads


def _matching(nodes: list[list[Node]], renders: dict) -> bool:
    if len(nodes) < 2 or not nodes[0]:
        return False
    shapes = [_shape(group, renders) for group in nodes]
    return all(shape == shapes[0] for shape in shapes[1:])


def _chained(nodes: list[list[Node]], order: list[Node], results: set[str]) -> bool:
    """Each instance but the last makes one tensor, read only by the next instance (and
    not a model output), in one place of its inputs; its other inputs are the same."""
    readers: dict[str, set[str]] = {}
    for node in order:
        for ref in node.inputs:
            readers.setdefault(ref, set()).add(node.name)
    places = set()
    for k in range(1, len(nodes)):
        before = {node.name for node in nodes[k - 1]}
        made = [f"{node.name}:{i}" for node in nodes[k - 1] for i in range(len(node.outputs))]
        out = [ref for ref in made if readers.get(ref, set()) - before or ref in results]
        names = {node.name for node in nodes[k]}
        if len(out) != 1 or out[0] in results or readers[out[0]] - names:
            return False
        reads, previous = _reads(nodes[k]), _reads(nodes[k - 1])
        if out[0] not in reads or len(reads) != len(previous):
            return False
        place = reads.index(out[0])
        places.add(place)
        if any(a != b for i, (a, b) in enumerate(zip(previous, reads)) if i != place):
            return False
    return len(places) == 1
