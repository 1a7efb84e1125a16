"""Repeated blocks found by graph structure, where the TF scopes leave a long flat forward.

A Keras application whose layers are named `regnetx002_stage_0_xblock_0_conv_1x1_1` (or
`conv2d_17`) puts hundreds of layers in one scope. A scope with at least `MIN_UNITS` own
nodes and one-layer children is searched; its *units* are its own nodes and child scopes.

1. **Order.** The units in topological order, each then moved down to just before its
   first reader, so that a cell's work on an older input follows the cell before it.
2. **Cuts.** A cut is a point where at most one tensor made before it is read after it
   (constants and the scope's own inputs do not count). A segment holding most of the
   scope (no such point: NASNet's cells read the two cells before them) is also cut where
   two are; a single unit cut off there before a cell that alone reads it joins the cell
   (the last cell's relu, conv, bn on its newest input). The units between two cuts form a
   *segment*.
3. **Signatures.** A segment's signature is its units' kinds (layer class and argument
   names, expression template and attributes) and wiring, not the layers' argument values:
   those become constructor arguments (channels, kernel, stride) in modules.py.
4. **Blocks.** Runs of segments whose signature sequence repeats are taken greedily by
   units saved per output tensor. Each occurrence, and each unique segment of at least
   `CELL_NODES` IR nodes, becomes a child scope, so modules.py gives equal blocks one class
   (with arguments where values vary).
5. **Stages.** Consecutive blocks, each reading only the one before's output, become one
   scope (an `nn.Sequential` in modules.py), split where their names say the stage changes.
6. **Chains.** Inside big blocks, chains of units that each read only the one before (a
   separable convolution branch) and occur more than once become blocks of their own.

block_names.py names what was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx

from codegen.backends.pytorch.block_names import clean_names, name_blocks, name_tokens, render_sig
from codegen.backends.pytorch.structure import Scope, Tree
from codegen.ir.graph import Graph, Node, split_ref

MIN_UNITS = 40  # own nodes and one-layer children of a scope before it is searched
MIN_BLOCK = 3  # IR nodes in a block
MAX_PATTERN = 60  # segments in a block
MIN_CELL = 30  # units of a found block before chains inside it are sought
MIN_CHAIN = 4  # IR nodes in such a chain
CELL_NODES = 24  # IR nodes of a segment that becomes a module even if it is unique
NAMED_NODES = 4  # IR nodes of a unique segment that becomes a module where names mark it
LONG_SEGMENT = 60  # units in a segment before it is cut where two tensors are live


@dataclass
class Unit:
    node: Node | None  # an own node of the scope
    scope: Scope | None  # or a child scope
    nodes: list[Node]
    inputs: list[str] = field(default_factory=list)  # refs from outside the unit
    outputs: list[str] = field(default_factory=list)
    sig: tuple = ()

    @property
    def name(self) -> str:
        return self.scope.name if self.scope is not None else ""


def find_blocks(tree: Tree, graph: Graph) -> None:
    """Restructure every long flat scope of `tree` in place (see the module docstring)."""
    readers: dict[str, set[str]] = {}
    for node in graph.nodes.values():
        for ref in node.inputs:
            readers.setdefault(ref, set()).add(node.name)
    for output in graph.outputs:
        readers.setdefault(output.source, set()).add("")
    found: list[tuple[Scope, Scope]] = []  # (parent, block)
    _visit(tree, tree.root, readers, found)
    parents = list({id(parent): parent for parent, _ in found}.values())
    _nested_chains(tree, [block for _, block in found] + parents, readers)


def _visit(tree: Tree, scope: Scope, readers: dict, found: list) -> None:
    for child in scope.children:
        _visit(tree, child, readers, found)
    clean_names(tree, scope, numbers=False)
    if any(len(child.calls) > 1 for child in scope.children):
        return  # a shared layer's calls sit between blocks
    flat = len(scope.nodes) + sum(1 for child in scope.children if child.leaf is not None)
    if flat < MIN_UNITS:
        return  # the scopes split it well enough (or it is short)
    units = _units(tree, scope, readers)
    segments = _segments(units, readers)
    blocks = _choose(segments, readers)
    if not blocks:
        return
    covered = {index for a, b in blocks for index in range(a, b)}
    blocks += [(index, index + 1) for index, segment in enumerate(segments)  # a unique cell
               if index not in covered and (sum(len(u.nodes) for u in segment) >= CELL_NODES
                                            or _named_block(segment))]
    made = [(scope, _make_block(tree, scope, [u for s in segments[a:b] for u in s]))
            for a, b in sorted(blocks)]
    name_blocks(tree, made)
    found += made
    _group_stages(tree, scope, readers)
    clean_names(tree, scope)
    tree.notes.append(f"scope {scope.path or '(model)'!r}: {len(made)} blocks found by graph "
                      f"structure")


def _nested_chains(tree: Tree, blocks: list[Scope], readers: dict) -> None:
    """Inside big found blocks (NASNet's cells), chains of units that each read only the one
    before (a separable convolution branch: relu, depthwise, pointwise, bn, ...) that occur
    more than once become blocks of their own."""
    candidates: list[tuple[Scope, list[Unit], tuple]] = []
    for block in blocks:
        if len(block.nodes) + len(block.children) < MIN_CELL:
            continue
        for chain in _chains(_units(tree, block, readers), readers):
            if sum(len(unit.nodes) for unit in chain) >= MIN_CHAIN:
                candidates.append((block, chain, tuple(unit.sig for unit in chain)))
    counts: dict[tuple, int] = {}
    for _, _, sig in candidates:
        counts[sig] = counts.get(sig, 0) + 1
    made = [(block, _make_block(tree, block, chain)) for block, chain, sig in candidates
            if counts[sig] > 1]
    name_blocks(tree, made, chains=True)


def _chains(units: list[Unit], readers: dict) -> list[list[Unit]]:
    """Maximal runs of units where each one's only input is the one before's only output,
    read by nothing else (in the order of their first unit)."""
    producer = {ref: index for index, unit in enumerate(units) for ref in unit.outputs}
    following: dict[int, int] = {}
    for index, unit in enumerate(units):
        before = producer.get(unit.inputs[0]) if len(unit.inputs) == 1 else None
        if (before is not None and len(units[before].outputs) == 1
                and len(readers.get(units[before].outputs[0], ())) == 1):
            following[before] = index
    starts = set(following) - set(following.values())
    chains = []
    for start in sorted(starts):
        chain = [start]
        while chain[-1] in following:
            chain.append(following[chain[-1]])
        chains.append([units[index] for index in chain])
    return chains


# -- units ---------------------------------------------------------------------------------
def _units(tree: Tree, scope: Scope, readers: dict) -> list[Unit]:
    units = [Unit(node, None, [node]) for node in scope.nodes]
    units += [Unit(None, child, child.all_nodes()) for child in scope.children]
    owner = {node.name: index for index, unit in enumerate(units) for node in unit.nodes}
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(units)))
    for index, unit in enumerate(units):
        inside = {node.name for node in unit.nodes}
        for node in sorted(unit.nodes, key=lambda n: tree.position[n.name]):
            for ref in node.inputs:
                if split_ref(ref)[0] not in inside and ref not in unit.inputs:
                    unit.inputs.append(ref)
                    if split_ref(ref)[0] in owner:
                        graph.add_edge(owner[split_ref(ref)[0]], index)
            unit.outputs += [f"{node.name}:{i}" for i in range(len(node.outputs))
                             if any(r not in inside for r in readers.get(f"{node.name}:{i}", ()))]
        unit.sig = _unit_sig(tree, unit)
    first = {index: min(tree.position[n.name] for n in unit.nodes) for index, unit in enumerate(units)}
    order = list(nx.lexicographical_topological_sort(graph, key=lambda index: first[index]))
    return [units[index] for index in _sink(order, graph)]


def _sink(order: list[int], graph: nx.DiGraph) -> list[int]:
    """Each unit moved down to just before its first reader, the last ones first: a cell's
    work on its older input (NASNet's 'adjust' path) then follows the cell before it instead
    of running through it, so the cut between the two cells shows."""
    order = list(order)
    for _ in range(2):  # (the second pass: units the first one's moves left above others)
        for unit in reversed(list(order)):
            readers = list(graph.successors(unit))
            if not readers:
                continue
            here = order.index(unit)
            first = min(order.index(reader) for reader in readers)
            if first > here + 1:
                order.pop(here)
                order.insert(first - 1, unit)
    return order


def _unit_sig(tree: Tree, unit: Unit) -> tuple:
    nodes = sorted(unit.nodes, key=lambda n: tree.position[n.name])
    local = {}
    parts = []
    for index, node in enumerate(nodes):
        wiring = tuple(local.get(ref, "in") for ref in node.inputs)
        parts.append((render_sig(tree.renders[node.name]), wiring))
        for position in range(len(node.outputs)):
            local[f"{node.name}:{position}"] = (index, position)
    return tuple(parts)


# -- segments ------------------------------------------------------------------------------
def _segments(units: list[Unit], readers: dict) -> list[list[Unit]]:
    """The units between cuts: points where at most one tensor made before is read after;
    inside a segment longer than `LONG_SEGMENT` units or half the scope, also where two are (cells that read
    the two cells before them, as in NASNet)."""
    index_of = {node.name: i for i, unit in enumerate(units) for node in unit.nodes}
    count = len(units)
    delta = [0] * (count + 1)
    for i, unit in enumerate(units):
        if not unit.inputs:
            continue  # a constant: every block may read it
        for ref in unit.outputs:
            last = max((index_of.get(r, count) for r in readers.get(ref, ())), default=i)
            if last > i:
                delta[i] += 1
                delta[last] -= 1
    live, total = [], 0
    for change in delta[:count]:
        total += change
        live.append(total)
    segments = _merge_named(_split(units, live, 0, count, 1))
    result = []
    for segment in segments:
        if len(segment) > min(LONG_SEGMENT, count // 2):  # most of the scope: no 1-cuts
            start = units.index(segment[0])
            result += _join_short(_split(units, live, start, start + len(segment), 2), readers)
        else:
            result.append(segment)
    return result


def _join_short(segments: list[list[Unit]], readers: dict) -> list[list[Unit]]:
    """Single units cut off before a cell (NASNet's last cell, and its first, begin with a
    relu, conv, bn on their newest input while nothing else is live) join the segment after
    them where that is a cell (`CELL_NODES` IR nodes or more) and only it reads what they
    make."""
    joined: list[list[Unit]] = []
    for segment in reversed(segments):
        if (joined and len(segment) == 1 and sum(len(u.nodes) for u in joined[-1]) >= CELL_NODES
                and _read_only_by(segment, joined[-1], readers)):
            joined[-1] = segment + joined[-1]
        else:
            joined.append(segment)
    return joined[::-1]


def _read_only_by(segment: list[Unit], following: list[Unit], readers: dict) -> bool:
    inside = {node.name for unit in following for node in unit.nodes}
    refs = [ref for unit in segment for ref in unit.outputs]
    return bool(refs) and all(readers.get(ref) and readers[ref] <= inside for ref in refs)


def _merge_named(segments: list[list[Unit]]) -> list[list[Unit]]:
    """Neighbouring segments whose layers' names agree up to an instance number
    ('expanded_conv_3_expand', 'expanded_conv_3_depthwise', 'expanded_conv_3_project':
    'expanded_conv_3') as one: a block without a residual has a cut between each of its
    layers, but its layers' names still say where it begins and ends. Unnamed segments (an
    activation) between two such go with them."""
    merged: list[list[Unit]] = []
    pending: list[list[Unit]] = []  # unnamed segments after the last named one
    for segment in segments:
        if not _layer_names(segment):
            pending.append(segment)
            continue
        if merged and _layer_names(merged[-1]) and _same_instance(merged[-1], segment):
            merged[-1] = merged[-1] + [unit for piece in pending for unit in piece] + segment
        else:
            merged += pending + [segment]
        pending = []
    return merged + pending


def _layer_names(segment: list[Unit]) -> list[list[str]]:
    return [name_tokens(unit.name) for unit in segment if unit.name]


def _same_instance(first: list[Unit], second: list[Unit]) -> bool:
    """Both segments' names agree up to one instance number, or (names without one:
    'expanded_conv_depthwise', 'expanded_conv_project') share at least two words that no
    name follows with a number ('expanded_conv_1_expand' is another instance)."""
    keys = _instance_key(first), _instance_key(second)
    if any(keys):
        return keys[0] == keys[1]
    names = _layer_names(first) + _layer_names(second)
    common = _common_tokens(names)
    return len(common) >= 2 and not any(
        len(tokens) > len(common) and tokens[len(common)].isdigit() for tokens in names)


def _named_block(segment: list[Unit]) -> bool:
    """A unique segment the source's names mark as one block (`expanded_conv_6_*`)."""
    return (sum(len(u.nodes) for u in segment) >= NAMED_NODES and bool(_layer_names(segment))
            and _same_instance(segment, segment))


def _instance_key(segment: list[Unit]) -> tuple:
    """The common prefix of the segment's layer names, up to its last number ('' if none)."""
    common = _common_tokens(_layer_names(segment))
    while common and not common[-1].isdigit():
        common.pop()
    return tuple(common) if len(common) >= 2 else ()


def _common_tokens(names: list[list[str]]) -> list[str]:
    common = list(names[0]) if names else []
    for tokens in names[1:]:
        same = 0
        while same < min(len(common), len(tokens)) and common[same] == tokens[same]:
            same += 1
        common = common[:same]
    return common


def _split(units: list[Unit], live: list[int], start: int, end: int, width: int) -> list[list[Unit]]:
    segments, current = [], []
    for i in range(start, end):
        current.append(units[i])
        if live[i] <= width:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def _segment_sig(segment: list[Unit]) -> tuple:
    local, outside, parts = {}, {}, []
    for index, unit in enumerate(segment):
        wiring = []
        for ref in unit.inputs:
            if ref in local:
                wiring.append(local[ref])
            else:
                wiring.append(("in", outside.setdefault(ref, len(outside))))
        parts.append((unit.sig, tuple(wiring)))
        for position, ref in enumerate(unit.outputs):
            local[ref] = (index, position)
    return tuple(parts)


def _choose(segments: list[list[Unit]], readers: dict) -> list[tuple[int, int]]:
    """Non-overlapping runs of segments [start, end) that repeat, greedily by units saved
    per output (a run that ends where the next begins returns one tensor, a run that starts
    mid-cell returns two)."""
    ids: dict[tuple, int] = {}
    seq = [ids.setdefault(_segment_sig(s), len(ids)) for s in segments]
    sizes = [sum(len(unit.nodes) for unit in s) for s in segments]
    taken = [False] * len(seq)
    chosen: list[tuple[int, int]] = []
    while True:
        best = None
        for length in range(1, min(MAX_PATTERN, len(seq) // 2) + 1):
            seen: dict[tuple, list[int]] = {}
            for start in range(len(seq) - length + 1):
                if any(taken[start:start + length]):
                    continue
                seen.setdefault(tuple(seq[start:start + length]), []).append(start)
            for starts in seen.values():
                places, end = [], -1
                for start in starts:
                    if start >= end:
                        places.append(start)
                        end = start + length
                size = sum(sizes[places[0]:places[0] + length])
                if len(places) < 2 or size < MIN_BLOCK:
                    continue
                first = segments[places[0]][0]
                exits = _exits([u for s in segments[places[0]:places[0] + length] for u in s], readers)
                score = ((len(places) - 1) * size / max(exits, 1),
                         first.scope is not None or _has_weights(first), -places[0])
                if best is None or score > best[0]:
                    best = (score, length, places)
        if best is None:
            break
        _, length, places = best
        for start in places:
            taken[start:start + length] = [True] * length
            chosen.append((start, start + length))
    return sorted(chosen)


def _exits(units: list[Unit], readers: dict) -> int:
    """How many tensors the units make that something else reads."""
    inside = {node.name for unit in units for node in unit.nodes}
    return sum(1 for unit in units for ref in unit.outputs
               if any(reader not in inside for reader in readers.get(ref, ())))


def _has_weights(unit: Unit) -> bool:
    return unit.node is not None and unit.sig[0][0][0] == "layer"


# -- scopes --------------------------------------------------------------------------------
def _make_block(tree: Tree, scope: Scope, units: list[Unit]) -> Scope:
    nodes = sorted((u.node for u in units if u.node is not None), key=lambda n: tree.position[n.name])
    children = [u.scope for u in units if u.scope is not None]
    block = Scope("block", scope.path, nodes, children, found=True)
    moved = {id(node) for node in nodes}
    scope.nodes = [node for node in scope.nodes if id(node) not in moved]
    scope.children = [c for c in scope.children if not any(c is d for d in children)] + [block]
    return block


def _group_stages(tree: Tree, scope: Scope, readers: dict) -> None:
    """Runs of found blocks, each reading only the one before's output, as one scope."""
    units = _units(tree, scope, readers)
    runs: list[list[Scope]] = []
    for unit in units:
        block = unit.scope
        if block is None or not block.found or len(unit.outputs) != 1:
            runs.append([])
            continue
        last = runs[-1][-1] if runs and runs[-1] else None
        if (last is not None and unit.inputs == _outputs_of(units, last)
                and _stage_key(block) == _stage_key(last)):
            runs[-1].append(block)
        else:
            runs.append([block])
    for run in runs:
        if len(run) < 2:
            continue
        key = _stage_key(run[0])
        stage = Scope(key + "s" if key and not key.endswith("s") else key or "blocks",
                      scope.path, [], run, found=True)
        stage.path = f"{scope.path}/{stage.name}".lstrip("/")
        stage.class_hint = "stage"
        scope.children = [c for c in scope.children if not any(c is b for b in run)] + [stage]


def _outputs_of(units: list[Unit], block: Scope) -> list[str]:
    return next(unit.outputs for unit in units if unit.scope is block)


def _stage_key(block: Scope) -> str:
    """The block's name without its instance number: 'stage_0_xblock_3' -> 'stage_0_xblock'."""
    return re.sub(r"_?\d+$", "", block.name)


