"""Scope names without the numbers a tracer appends.

Tracing a Keras model again (`model.export`, a SavedModel's concrete functions) names each
layer's scope `<layer>_1`, or `<layer>_2` where that is taken (`conv2d_1_2` for the layer
`conv2d_1`). The variables keep the layer's own name (`conv2d_1/kernel`), so a scope whose
layer's variables name it without the suffix is renamed to that name. Where the variables
show the whole model retraced, the scopes without variables beside them (an activation, a
multiply) lose the tracer's number too, and then a Keras instance number where the name is
the only one of its kind there (`multiply_1` -> `multiply`). Only leaf scopes (layers) are
renamed, never onto a name another scope has: names stay unique and the same IR gives the
same names. Only `Node.scope` changes; TF names and the weights' source names stay.
"""

from __future__ import annotations

import re

from codegen.ir.graph import Graph

NUMBER = re.compile(r"_\d+$")


def drop_tracer_suffixes(graph: Graph) -> Graph:
    scopes = sorted({node.scope for node in graph.nodes.values() if node.scope})
    inner = {scope.rpartition("/")[0] for scope in scopes} | {
        "/".join(scope.split("/")[:depth]) for scope in scopes
        for depth in range(1, scope.count("/") + 1)}
    leaves = [scope for scope in scopes if scope not in inner and "/" in scope]
    layer_names = _variable_layers(graph)
    renames: dict[str, str] = {}
    traced: dict[str, list[bool]] = {}  # parent scope -> per layer with variables: suffixed?
    for scope in leaves:
        parent, _, name = scope.rpartition("/")
        layer = layer_names.get(scope)
        if layer is None:
            continue
        suffixed = name != layer and re.fullmatch(re.escape(layer) + r"(_\d+)+", name) is not None
        traced.setdefault(parent, []).append(suffixed)
        if suffixed:
            renames[scope] = f"{parent}/{layer}"
    for parent, flags in traced.items():
        if not any(flags):
            continue
        siblings = [s for s in leaves if s.rpartition("/")[0] == parent and s not in layer_names]
        everywhere = all(flags)  # every layer there carries the tracer's number
        for scope in siblings:
            name = scope.rpartition("/")[2]
            if everywhere or re.search(r"_\d+_\d+$", name):
                renames[scope] = f"{parent}/{NUMBER.sub('', name)}"
    renames = _unique(renames, set(scopes))
    _apply(graph, renames)
    # then a Keras instance number where the name is the only one of its kind there
    parents = {parent for parent, flags in traced.items() if any(flags)}
    current = sorted({node.scope for node in graph.nodes.values() if node.scope})
    bases: dict[tuple[str, str], list[str]] = {}
    for scope in current:
        parent, _, name = scope.rpartition("/")
        if parent in parents and scope not in inner:
            bases.setdefault((parent, NUMBER.sub("", name)), []).append(scope)
    second = {scopes_[0]: f"{parent}/{base}" for (parent, base), scopes_ in bases.items()
              if len(scopes_) == 1 and base and scopes_[0] != f"{parent}/{base}"}
    _apply(graph, _unique(second, set(current)))
    return graph


def _variable_layers(graph: Graph) -> dict[str, str]:
    """scope -> the layer its own nodes' variables name (`conv2d_1` for `conv2d_1/kernel`),
    where they all name one."""
    found: dict[str, set[str]] = {}
    for node in graph.nodes.values():
        for weight in node.weights.values():
            entry = graph.weights.get(weight)
            parts = entry.source.split("/") if entry is not None and entry.source else []
            if len(parts) >= 2 and node.scope:
                found.setdefault(node.scope, set()).add(parts[-2])
    return {scope: next(iter(names)) for scope, names in found.items() if len(names) == 1}


def _unique(renames: dict[str, str], existing: set[str]) -> dict[str, str]:
    """The renames whose new name no other scope has or gets (all at once)."""
    targets: dict[str, list[str]] = {}
    for old, new in renames.items():
        targets.setdefault(new, []).append(old)
    kept = {old: new for old, new in renames.items() if len(targets[new]) == 1}
    while True:  # a target still held by a scope that keeps its name is no rename
        dropped = {old for old, new in kept.items() if new in existing and new not in kept}
        if not dropped:
            return dict(sorted(kept.items()))
        kept = {old: new for old, new in kept.items() if old not in dropped}


def _apply(graph: Graph, renames: dict[str, str]) -> None:
    for node in graph.nodes.values():
        if node.scope in renames:
            node.scope = renames[node.scope]


# a variable's own name after its layer's (`conv1_kernel` -> `conv1`)
VARIABLE_ROLES = ("depthwise_kernel", "pointwise_kernel", "kernel", "bias", "weights", "weight",
                  "gamma", "beta", "moving_mean", "moving_variance", "embeddings", "scale",
                  "offset", "w", "b")


def scopes_from_variables(graph: Graph) -> Graph:
    """A layer outside every scope is put in the scope its variables name.

    A plain `tf.Module`'s traced function has no name scopes (`Conv2D`, `MatMul`), but its
    variables name their layers (`conv1/kernel`, `dw/depthwise_kernel`, or the attribute
    path `conv1/kernel` of `self.conv1.kernel`; `conv1_kernel` for `self.conv1_kernel`):
    each node with weights and no scope, whose weights all name one layer, gets that layer
    as its scope, so its module is called `conv1`, not `conv`. Nodes that already have a
    scope keep it; a layer name that is also another node's scope path is left alone."""
    taken = {node.scope for node in graph.nodes.values() if node.scope}
    taken |= {"/".join(scope.split("/")[:depth]) for scope in taken
              for depth in range(1, scope.count("/") + 1)}
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        if node.scope or not node.weights:
            continue
        layers = {_layer_of(graph, weight) for weight in node.weights.values()}
        layer = next(iter(layers)) if len(layers) == 1 else None
        if layer and layer not in taken:
            node.scope = layer
    return graph


def _layer_of(graph: Graph, weight: str) -> str | None:
    """The layer a weight's source variable names: `conv1` for `conv1/kernel` and for
    `conv1_kernel`; None for a name without a layer (`Variable`, `kernel`)."""
    entry = graph.weights.get(weight)
    source = entry.source if entry is not None else ""
    if not source:
        return None
    layer, _, own = source.rpartition("/")
    if layer:
        return layer.strip("/") or None
    for role in VARIABLE_ROLES:
        if own.endswith(f"_{role}") and len(own) > len(role) + 1:
            return own[: -len(role) - 1]
    return None
