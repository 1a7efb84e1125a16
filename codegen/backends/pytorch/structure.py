"""TF name scopes -> a tree of modules.

Every IR node sits in the scope of its TF name. A scope becomes:
- a *leaf*: it holds one layer (a node that owns an nn.Module, e.g. a conv) and nothing
  else but expressions, which move up to the parent (`preact` = BatchNorm + relu gives
  `self.preact = nn.BatchNorm2d(...)` and `F.relu(self.preact(x))` in the parent);
- a *module*: anything bigger; it gets a class (shared with identical scopes later);
- merged into its parent: scopes with expressions only, and scopes that would not form a
  function (their nodes and a sibling's depend on each other both ways). Those are
  reported, so `codegen build` can say which scopes it could not factor and why.

A layer that reads the same weights at several places (TF1 `reuse=True`, a Keras layer
called twice) is one module called several times: its calls are gathered in one leaf, in
the innermost scope that holds them all, so fine-tuning keeps the weights tied. Where
whole blocks repeat on the same weights, each feeding the next (ALBERT), the calls stay
in their blocks instead (depth.py) and modules.py calls one block in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from codegen.backends.pytorch.depth import depth_instances
from codegen.backends.pytorch.ops import Expr, Layer, render_op
from codegen.ir.graph import Graph, Node, split_ref


@dataclass
class Scope:
    name: str  # last part of the TF scope ("" for the root)
    path: str  # full TF scope
    nodes: list[Node] = field(default_factory=list)  # own nodes, topological order
    children: list[Scope] = field(default_factory=list)
    leaf: Node | None = None  # set when the scope is one layer
    calls: list[Node] = field(default_factory=list)  # the leaf's calls (several if shared)
    class_hint: str = ""  # the inner scope name when two scopes were merged
    found: bool = False  # made by blocks.py from the graph's structure, not a TF scope
    # filled by `interfaces`:
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def all_nodes(self) -> list[Node]:
        found = list(self.nodes) + list(self.calls)
        for child in self.children:
            found += child.all_nodes()
        return found


@dataclass
class Tree:
    root: Scope
    renders: dict[str, object]  # node name -> Layer | Expr
    position: dict[str, int]  # node name -> topological index
    notes: list[str]
    nodes: dict[str, Node]
    hints: dict[str, str] = field(default_factory=dict)  # node -> name of its old scope


def build_tree(graph: Graph, *, loops: bool = True) -> Tree:
    """`loops`: keep the layers of a block reused across depth in their blocks (depth.py)."""
    order = graph.topological_order()
    position = {node.name: index for index, node in enumerate(order)}
    renders = {node.name: render_op(node, graph) for node in order}
    scopes = _shared_scopes(order, renders, graph, loops)
    scopes.update(_borrowed_weights(order, renders, scopes))
    root = Scope("", "")
    for node in order:
        scope = root
        path = []
        for part in [p for p in scopes.get(node.name, node.scope).split("/") if p]:
            path.append(part)
            found = next((c for c in scope.children if c.name == part), None)
            if found is None:
                found = Scope(part, "/".join(path))
                scope.children.append(found)
            scope = found
        scope.nodes.append(node)
    while not root.nodes and len(root.children) == 1:  # the model's own top scope
        only = root.children[0]
        root = Scope(only.name, only.path, only.nodes, only.children)
    if len(root.children) == 1 and not root.children[0].calls:
        only = root.children[0]  # e.g. 'resnet_v2_152' beside the final 'output' squeeze
        root = Scope(only.name, only.path, only.nodes + root.nodes, only.children)
    tree = Tree(root, renders, position, [], graph.nodes)
    _normalise(tree, root, is_root=True)
    interfaces(tree, graph)
    return tree


def share_key(render) -> tuple | None:
    """Layers with equal keys compute the same function with the same weights: one module.
    None for layers without weights (a pool), which have nothing to keep tied."""
    if not isinstance(render, Layer) or not render.state:
        return None
    return (render.template, render.cls, tuple(render.args.items()),
            tuple(render.state.items()))


def _shared_scopes(order: list[Node], renders: dict, graph: Graph, loops: bool) -> dict[str, str]:
    """node name -> the scope to put it in, for the calls of a shared layer: one leaf,
    named after the variables' own scope ('shared_conv' for 'shared_conv/kernel'), in the
    innermost scope that holds every call."""
    groups: dict[tuple, list[Node]] = {}
    for node in order:
        key = share_key(renders[node.name])
        if key is not None:
            groups.setdefault(key, []).append(node)
    shared = [nodes for nodes in groups.values() if len(nodes) > 1]
    results = {output.source for output in graph.outputs}
    kept = depth_instances(order, renders, shared, results) if loops else {}
    scopes = {}
    for nodes in shared:
        parents = [node.scope.rpartition("/")[0].split("/") for node in nodes]
        weight = graph.weights[next(iter(renders[nodes[0].name].state.values()))]
        variable_scope = weight.source_name.rpartition("/")[0].rpartition("/")[2]
        leaf = variable_scope or nodes[0].scope.rpartition("/")[2] or "shared"
        for node in nodes:
            if node.name not in kept:
                scopes[node.name] = "/".join([*_common_prefix(parents), leaf])
            elif node.scope == kept[node.name] and variable_scope:  # TF1: 'layer_1/MatMul'
                scopes[node.name] = f"{node.scope}/{variable_scope}"  # -> 'layer_1/up'
    return scopes


def _borrowed_weights(order: list[Node], renders: dict, scopes: dict) -> dict[str, str]:
    """A layer whose only weight another kind of layer already holds (an output projection
    tied to the embedding table, `logits = h @ table.T`) is written as an expression over
    that layer's parameter, `F.linear(h, self.embedding.weight)`, in the innermost scope
    that holds both: one parameter, two readers. Such a layer's entry in `renders` is
    replaced by that expression; returns node name -> the scope it moves to."""
    holders: dict[str, Node] = {}  # IR weight -> the first layer holding it
    moved = {}
    for node in order:
        render = renders[node.name]
        if share_key(render) is None:
            continue
        owner = holders.get(render.state.get("weight", ""))
        if (owner is not None and render.template == "ops/linear.py.jinja"
                and set(render.state) == {"weight"}
                and share_key(renders[owner.name]) != share_key(render)):
            renders[node.name] = Expr("ops/linear.py.jinja", {"kind": "tied", "owner": owner.name},
                                      hint=render.hint)
            paths = [scopes.get(n.name, n.scope).split("/") for n in (node, owner)]
            moved[node.name] = "/".join(_common_prefix([paths[0][:-1], paths[1]]))
            continue
        for weight in render.state.values():
            holders.setdefault(weight, node)
    return moved


def _common_prefix(paths: list[list[str]]) -> list[str]:
    common = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return [part for part in common if part]


def _is_layer(tree: Tree, node: Node) -> bool:
    return isinstance(tree.renders[node.name], Layer)


def _one_module(tree: Tree, layers: list[Node]) -> bool:
    """No layer, one layer, or several calls of one shared layer."""
    keys = {share_key(tree.renders[node.name]) for node in layers}
    return len(layers) <= 1 or (len(keys) == 1 and None not in keys)


def _normalise(tree: Tree, scope: Scope, is_root: bool = False) -> None:
    for child in list(scope.children):
        _normalise(tree, child)
    kept = []
    for child in scope.children:
        layers = [n for n in child.nodes if _is_layer(tree, n)]
        if not child.children and _one_module(tree, layers) and not child.calls:
            # one layer (or none): the layer is a leaf attribute, expressions move up
            scope.nodes += [n for n in child.nodes if n not in layers]
            for node in child.nodes:
                if node not in layers:
                    tree.hints.setdefault(node.name, child.name)
            if layers:
                child.leaf, child.calls, child.nodes = layers[0], layers, []
                kept.append(child)
        else:
            kept.append(child)
    scope.children = kept
    scope.nodes.sort(key=lambda n: tree.position[n.name])
    if not is_root and not scope.nodes and len(scope.children) == 1 and not scope.leaf:
        only = scope.children[0]  # 'unit_1' holding only 'bottleneck_v2'
        scope.nodes, scope.children = only.nodes, only.children
        scope.leaf, scope.calls = only.leaf, only.calls
        scope.class_hint = only.class_hint or only.name
    _flatten_cycles(tree, scope)


def _contracted(tree: Tree, scope: Scope) -> nx.DiGraph:
    """Own nodes and children as vertices, data dependencies as edges."""
    owner: dict[str, str] = {node.name: node.name for node in scope.nodes}
    for index, child in enumerate(scope.children):
        for node in child.all_nodes():  # a leaf's calls are statements of their own
            owner[node.name] = node.name if child.calls else f"child:{index}"
    graph = nx.DiGraph()
    graph.add_nodes_from(set(owner.values()))
    for node_name, vertex in owner.items():
        for ref in tree.nodes[node_name].inputs:
            source = owner.get(split_ref(ref)[0])
            if source is not None and source != vertex:
                graph.add_edge(source, vertex)
    return graph


def _flatten_cycles(tree: Tree, scope: Scope) -> None:
    while True:
        try:
            cycle = nx.find_cycle(_contracted(tree, scope))
        except nx.NetworkXNoCycle:
            return
        vertex = next(v for edge in cycle for v in edge[:2] if v.startswith("child:"))
        child = scope.children.pop(int(vertex.split(":")[1]))
        tree.notes.append(
            f"scope {child.path!r} was not factored into a module: its nodes and "
            f"those around it depend on each other both ways"
        )
        scope.nodes = sorted(scope.nodes + child.nodes + child.calls,
                             key=lambda n: tree.position[n.name])
        scope.children += child.children


def interfaces(tree: Tree, graph: Graph) -> None:
    """Each module's inputs (refs from outside, by first use) and outputs."""
    readers: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        for ref in node.inputs:
            readers.setdefault(ref, []).append(node.name)
    graph_outputs = {output.source for output in graph.outputs}

    def visit(scope: Scope) -> None:
        inside = {node.name for node in scope.all_nodes()}
        inputs: list[str] = []
        for node in sorted(scope.all_nodes(), key=lambda n: tree.position[n.name]):
            for ref in node.inputs:
                if split_ref(ref)[0] not in inside and ref not in inputs:
                    inputs.append(ref)
        outputs = []
        for node in sorted(scope.all_nodes(), key=lambda n: tree.position[n.name]):
            for index in range(len(node.outputs)):
                ref = f"{node.name}:{index}"
                outside = any(r not in inside for r in readers.get(ref, []))
                if outside or ref in graph_outputs:
                    outputs.append(ref)
        scope.inputs, scope.outputs = inputs, outputs
        for child in scope.children:
            visit(child)

    visit(tree.root)
    # The model takes its inputs in the source's order and returns its outputs in the order
    # the user named them (--dst-node, signature), not in the order the graph first uses them
    tree.root.inputs = [f"{graph_input.name}:0" for graph_input in graph.inputs]
    tree.root.outputs = [output.source for output in graph.outputs]
