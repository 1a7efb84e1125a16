"""Names for the blocks blocks.py finds: from the source where the source agrees, else
from the structure.

A block is named after the common prefix of its layers' names up to its instance number
(`stage_0_xblock_0_conv_1x1_1`, ...: `stage_0_xblock_0`, less the parent scope's own name),
else after their common suffix (`separable_conv_1_normal_left1_3`, ...: `normal_left1_3`);
its layers after the rest where every block of its structure agrees (`conv_1x1_1`), else
after their role without the tracer's number (`add_3` -> `add`), else by kind (`conv`,
`bn`). Blocks of one structure get the same names, so modules.py gives them one class.
"""

from __future__ import annotations

import re

from codegen.backends.pytorch.naming import identifier
from codegen.backends.pytorch.registry import Layer
from codegen.backends.pytorch.structure import Scope, Tree
from codegen.ir.graph import Node

KIND_NAMES = {"Conv": "conv", "BatchNorm": "bn", "Linear": "fc", "LayerNorm": "norm",
              "Pool": "pool", "Embedding": "embedding"}


def render_sig(render) -> tuple:
    if isinstance(render, Layer):
        return ("layer", render.template, render.cls, tuple(render.args), tuple(render.state))
    return ("expr", render.template, repr(sorted(render.attrs.items())))


def name_tokens(name: str) -> list[str]:
    return [t for t in name.split("_") if t]


def _common(names: list[list[str]]) -> list[str]:
    common = []
    for column in zip(*names):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    return common


def _unit_names(tree: Tree, block: Scope) -> list[tuple[object, str]]:
    """(the thing to rename, its current name) for each child and own node of a block."""
    items: list[tuple[object, str]] = [(child, child.name) for child in block.children]
    for node in block.nodes:
        render = tree.renders[node.name]
        items.append((node, tree.hints.get(node.name, render.hint)))
    return items


def name_blocks(tree: Tree, made: list[tuple[Scope, Scope]], chains: bool = False) -> None:
    """Each block after the common prefix of its layers' names (less the parent's own name),
    its layers after the rest where all blocks of its structure agree, else by kind. A chain's
    class is named after what its layers' names share ('separable_conv_1', 'separable_conv_1_bn',
    ...: SeparableConv)."""
    groups: dict[tuple, list[tuple[Scope, Scope]]] = {}
    for parent, block in made:
        groups.setdefault(_block_key(tree, block), []).append((parent, block))
    for pairs in groups.values():
        group = [block for _, block in pairs]
        stripped = []
        for scope, block in pairs:
            items = _unit_names(tree, block)
            block.name, strip = _instance_name([name_tokens(name) for thing, name in items
                                                if isinstance(thing, Scope)], name_tokens(scope.name))
            block.path = f"{scope.path}/{block.name}".lstrip("/")
            stripped.append([(thing, strip(name)) for thing, name in items])
        _rename_units(tree, stripped)
        leaves = [name_tokens(name) for thing, name in stripped[0] if isinstance(thing, Scope)]
        common = [t for t in _common(leaves) if not t.isdigit()] if chains and len(leaves) > 1 else []
        words = [t for t in re.split(r"_?\d+_?", group[0].name) if t]
        for block in group:
            block.class_hint = "_".join(common) if common else words[-1] if words else "block"


def _instance_name(named: list[list[str]], parent: list[str]):
    """A block's name from its layers' names, and how to strip it from each: the common
    prefix up to its instance number ('stage_0_xblock_0_conv_1x1_1', ...: 'stage_0_xblock_0',
    less the parent's own name), else the common suffix ('separable_conv_1_normal_left1_3',
    'separable_conv_1_bn_normal_left1_3': 'normal_left1_3')."""
    prefix = _common(named) if len(named) > 1 else named[0][:-1] if named else []
    whole = list(prefix)
    while prefix and not prefix[-1].isdigit():
        prefix = prefix[:-1]  # end the prefix at its instance number
    if not prefix and len(whole) >= 2 and len(named) > 1 and not any(
            len(tokens) > len(whole) and tokens[len(whole)].isdigit() for tokens in named):
        prefix = whole  # the first of its kind, without a number ('expanded_conv_project')
    if prefix:
        name = prefix[len(parent):] if prefix[:len(parent)] == parent else prefix
        return "_".join(name or ["block"]), lambda text: _strip(text, prefix, 0)
    suffix = _common([n[::-1] for n in named])[::-1] if len(named) > 1 else []
    if not suffix:
        return "block", lambda text: text
    name = suffix if any(not t.isdigit() for t in suffix) else ["block", *suffix]
    return "_".join(name), lambda text: _strip(text, suffix, 1)


def _strip(text: str, part: list[str], at_end: int) -> str:
    tokens = name_tokens(text)
    if at_end and len(tokens) > len(part) and tokens[-len(part):] == part:
        return "_".join(tokens[:-len(part)])
    if not at_end and len(tokens) > len(part) and tokens[:len(part)] == part:
        return "_".join(tokens[len(part):])
    return text


def _block_key(tree: Tree, block: Scope) -> tuple:
    nodes = sorted(block.all_nodes(), key=lambda n: tree.position[n.name])
    return tuple(render_sig(tree.renders[node.name]) for node in nodes)


def _rename_units(tree: Tree, stripped: list[list[tuple[object, str]]]) -> None:
    """Give the units of a group of equal blocks their names: the stripped source names where
    every block agrees on them, else names by kind."""
    for column in zip(*stripped):
        names = {name for _, name in column}
        roles = {re.sub(r"(_\d+)+$", "", name) for name in names}  # 'add_3' -> 'add'
        for thing, name in column:
            if len(names) == 1 and name:
                pass
            elif len(roles) == 1 and next(iter(roles)):
                name = next(iter(roles))
            else:
                name = _kind_name(tree, thing) if isinstance(thing, Scope) else _hint(tree, thing)
            if isinstance(thing, Scope):
                thing.name = identifier(name)
            else:
                tree.hints[thing.name] = name


def _kind_name(tree: Tree, scope: Scope) -> str:
    if scope.leaf is None:
        return scope.class_hint or "block"
    cls = tree.renders[scope.leaf.name].cls.split(".")[-1]
    return next((short for word, short in KIND_NAMES.items() if word in cls), identifier(cls))


def _hint(tree: Tree, node: Node) -> str:
    return tree.renders[node.name].hint


def clean_names(tree: Tree, scope: Scope, numbers: bool = True) -> None:
    """The names in a scope without the scope's own name in front ('regnetx002_stem_conv' in
    'regnetx002': 'stem_conv', 'convnext_tiny_stage_0' in 'convnext_tiny': 'stage_0') and,
    in a scope the finder restructured (`numbers`), without the number a tracer appends
    ('re_lu_2': 're_lu'), where no other name there becomes the same."""
    parent = name_tokens(scope.name)
    items = [(child, child.name) for child in scope.children if not child.found]
    items += [(node, tree.hints.get(node.name, tree.renders[node.name].hint)) for node in scope.nodes]
    cleaned = []
    for thing, name in items:
        tokens = name_tokens(name)
        if len(tokens) > len(parent) and parent and tokens[:len(parent)] == parent:
            tokens = tokens[len(parent):]
        while numbers and len(tokens) > 1 and tokens[-1].isdigit():
            tokens = tokens[:-1]
        cleaned.append((thing, name, "_".join(tokens)))
    counts: dict[str, int] = {}
    for _, _, new in cleaned:
        counts[new] = counts.get(new, 0) + 1
    taken = {child.name for child in scope.children if child.found}
    for thing, name, new in cleaned:
        if counts[new] > 1 or new in taken or not new:
            continue
        if isinstance(thing, Scope):
            thing.name = new
        else:
            tree.hints[thing.name] = new
