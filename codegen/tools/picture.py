"""`codegen inspect --svg`: a Graphviz drawing of the graph, collapsed by name scope.

Ops are grouped by the first `depth` parts of their name: `resnet_v2_152/block3/unit_5/...`
at depth 2 is one box `block3`, labelled with its op count, main ops and output shape.
A group of one op is drawn as that op (type and output shape). Scopes above the depth
become labelled frames (Graphviz clusters). Without `--depth`, the deepest depth that
keeps the picture at most MAX_BOXES boxes is used.

The sources are neutral `Op` lists, made from a TF graph or an IR graph.json.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from codegen.errors import OutputError, UsageError

MAX_BOXES = 40
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
MINOR_OPS = {"Identity", "Const", "Shape", "Reshape", "Squeeze", "Pack", "StridedSlice",
             "identity", "reshape", "squeeze", "transpose", "constant"}
STYLE = {
    "graph": {"rankdir": "TB", "fontname": "Helvetica", "fontsize": "11", "nodesep": "0.25",
              "ranksep": "0.22", "labeljust": "l", "newrank": "true"},
    "node": {"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
             "fontsize": "10", "fillcolor": "white", "margin": "0.1,0.02"},
    "edge": {"arrowsize": "0.6", "color": "#555555"},
    "box": {"fillcolor": "#dbe9f6"},
    "input": {"fillcolor": "#d5f0d5", "shape": "box"},
    "output": {"fillcolor": "#fde3c8"},
    "cluster": {"style": "rounded,dashed", "color": "#888888", "fontsize": "11"},
}


@dataclass
class Op:
    name: str  # full scoped name: 'resnet_v2_152/block1/unit_1/.../Conv2D'
    op: str
    inputs: list[str]  # names of the ops it reads
    shape: list | None


@dataclass
class Group:
    key: str
    members: list[Op]


def ops_from_tf(graph, skip_prefixes: tuple[str, ...] = ()) -> list[Op]:
    """The data path of a tf.Graph: ops reachable from its placeholders."""
    ops = [op for op in graph.get_operations() if not op.name.startswith(skip_prefixes)]
    kept = {op.name for op in ops if op.type in ("Placeholder", "PlaceholderWithDefault")}
    for op in ops:  # get_operations() is in topological order
        if any(t.op.name in kept for t in op.inputs):
            kept.add(op.name)
    result = []
    for op in ops:
        if op.name in kept:
            shape = op.outputs[0].shape if op.outputs else None
            result.append(Op(op.name, op.type, [t.op.name for t in op.inputs if t.op.name in kept],
                             shape.as_list() if shape is not None and shape.rank is not None
                             else None))
    return result


def ops_from_ir(graph) -> list[Op]:
    result = [Op(i.name, "Input", [], list(i.shape)) for i in graph.inputs]
    for node in graph.nodes.values():
        result.append(Op(node.name, node.op, [ref.rpartition(":")[0] for ref in node.inputs],
                         node.outputs[0].shape if node.outputs else None))
    return result


def group_ops(ops: list[Op], depth: int) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for op in ops:
        key = "/".join(op.name.split("/")[:depth])
        groups.setdefault(key, Group(key, [])).members.append(op)
    return groups


def auto_depth(ops: list[Op]) -> int:
    deepest = max((op.name.count("/") + 1 for op in ops), default=1)
    best = 1
    for depth in range(1, deepest + 1):
        if len(group_ops(ops, depth)) <= MAX_BOXES:
            best = depth
    return best


def format_shape(shape: list | None) -> str:
    if shape is None:
        return "?"
    return "×".join("N" if i == 0 and s is None else ("?" if s is None else str(s))
                    for i, s in enumerate(shape)) or "scalar"


def _box_label(group: Group, parent: str, owner: dict[str, str], readers: dict) -> str:
    name = group.key[len(parent) + 1:] if parent else group.key
    members = group.members
    if len(members) == 1:
        op = members[0]
        head = "" if name == op.op else f"{name}\n"
        return f"{head}{op.op} · {format_shape(op.shape)}"
    leaving = [op for op in members
               if not readers.get(op.name) or any(owner[r] != group.key for r in readers[op.name])]
    shape = format_shape((leaving or members)[-1].shape)
    counts = Counter(op.op for op in members if op.op not in MINOR_OPS) or Counter(
        op.op for op in members)
    main = ", ".join(f"{count} {op}" for op, count in counts.most_common(2))
    return f"{name}{_repeats(group)}\n{len(members)} ops: {main}\n{shape}"


def _repeats(group: Group) -> str:
    """' · 36 × unit_*' when the group is made of numbered sub-scopes."""
    depth = group.key.count("/") + 1
    children = {op.name.split("/")[depth] for op in group.members if op.name.count("/") > depth}
    patterns = {re.sub(r"\d+", "*", child) for child in children}
    if len(children) > 1 and len(patterns) == 1 and "*" in next(iter(patterns)):
        return f" · {len(children)} × {patterns.pop()}"
    return ""


def to_dot(ops: list[Op], depth: int | None = None, title: str = ""):
    """A graphviz.Digraph of `ops` collapsed to `depth` (auto when None)."""
    import graphviz

    depth = depth or auto_depth(ops)
    groups = group_ops(ops, depth)
    owner = {op.name: group.key for group in groups.values() for op in group.members}
    readers: dict[str, list[str]] = {}
    for op in ops:
        for source in op.inputs:
            readers.setdefault(source, []).append(op.name)
    ids = {key: f"n{index}" for index, key in enumerate(groups)}
    dot = graphviz.Digraph(graph_attr={**STYLE["graph"], "label": title, "labelloc": "t"},
                           node_attr=STYLE["node"], edge_attr=STYLE["edge"])
    inside: Counter = Counter()  # scope -> boxes and scopes directly inside it
    scopes: dict[str, str] = {}  # enclosing scopes of the boxes -> cluster id, in order
    for key in groups:
        parts = key.split("/")
        inside[_parent(key)] += 1
        for size in range(1, len(parts)):
            scope = "/".join(parts[:size])
            if scope not in scopes:
                scopes[scope] = f"cluster_{len(scopes)}"
                inside[_parent(scope)] += 1
    # a scope holding a single thing gets no frame: 'unit_1/bottleneck_v2' is one box
    frames = {scope: cluster for scope, cluster in scopes.items() if inside[scope] > 1}
    _add_scope(dot, "", groups, frames, ids, owner, readers)
    edges = []
    for op in ops:
        for source in op.inputs:
            edge = (owner[source], owner[op.name])
            if edge[0] != edge[1] and edge not in edges:
                edges.append(edge)
    for tail, head in edges:
        dot.edge(ids[tail], ids[head])
    return dot


def _parent(name: str, frames: dict | None = None) -> str:
    """The enclosing scope (with `frames`: the nearest one that is drawn)."""
    parent = name.rpartition("/")[0]
    while frames is not None and parent and parent not in frames:
        parent = parent.rpartition("/")[0]
    return parent


def _add_scope(dot, scope: str, groups, frames, ids, owner, readers) -> None:
    import graphviz

    for key, group in groups.items():
        if _parent(key, frames) != scope:
            continue
        outside = [r for op in group.members for r in readers.get(op.name, []) if owner[r] != key]
        if group.members[0].op in ("Placeholder", "PlaceholderWithDefault", "Input"):
            style = STYLE["input"]
        elif not outside:
            style = STYLE["output"]
        else:
            style = STYLE["box"] if len(group.members) > 1 else {}
        # names are data: escape() keeps backslashes and quotes literal in the DOT text
        dot.node(ids[key], graphviz.escape(_box_label(group, scope, owner, readers)), **style)
    for child, cluster in frames.items():
        if _parent(child, frames) == scope:
            with dot.subgraph(name=cluster) as sub:
                label = child[len(scope) + 1:] if scope else child
                sub.attr(label=graphviz.escape(label), **STYLE["cluster"])
                _add_scope(sub, child, groups, frames, ids, owner, readers)


def check_options(path: Path, depth: int | None) -> str:
    """The Graphviz format for `path`; raises UsageError on a bad suffix or depth."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown picture format (use {', '.join(FORMATS)})")
    if depth is not None and depth < 1:
        raise UsageError(f"--depth must be 1 or more (got {depth})")
    return fmt


def write_picture(ops: list[Op], path: Path, depth: int | None = None, title: str = "") -> int:
    """Render to `path` (format from its suffix); returns the number of boxes."""
    import graphviz

    path = Path(path)
    fmt = check_options(path, depth)
    dot = to_dot(ops, depth, title)
    boxes = len(group_ops(ops, depth or auto_depth(ops)))
    try:
        data = dot.source.encode() if fmt == "dot" else dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise OutputError(f"{path}: Graphviz's 'dot' program is not installed (apt-get install "
                          "graphviz, brew install graphviz); or write the DOT text with "
                          f"--svg {path.with_suffix('.dot')}") from None
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror})") from None
    return boxes
