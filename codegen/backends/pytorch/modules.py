"""The module tree -> classes: statements, structural signatures, shared classes.

Scopes with the same signature (same statements, wiring, attribute names and layer
types) share one class. Constructor values that differ between its instances (channel
counts, strides, ...) become the class's parameters; equal ones stay literals.
A module that only chains child modules becomes an `nn.Sequential`; a run of modules of
one class that take several inputs, each taking the one before's output and otherwise the
same inputs (a transformer's layers, each also given the mask), becomes an `nn.ModuleList`
and a loop. Such a run on the same weights (ALBERT's one layer applied N times, see
depth.py), of one input or several, is one module called in a loop.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from codegen.backends.pytorch.conv_ops import CONV_HELPERS
from codegen.backends.pytorch.naming import Namespace, class_name, identifier, role_name
from codegen.backends.pytorch.ops import Expr, Layer
from codegen.backends.pytorch.structure import Scope, Tree, share_key
from codegen.backends.pytorch.variants import OptionalPart, flag_name, optional_parts, stmt_key
from codegen.ir.graph import Node

# when two varying values always agree, the merged parameter takes the first name here
PREFERRED = ("in_channels", "out_channels", "channels", "num_features", "stride")
STACK_MIN = 2  # modules in a run before it becomes an nn.ModuleList
SHORT_KIND = {"Conv2d": "Conv", "BatchNorm2d": "BN", "BatchNorm1d": "BN", "Linear": "Linear",
              "MaxPool2d": "MaxPool", "AvgPool2d": "AvgPool", "Conv1d": "Conv", "Conv3d": "Conv",
              "ConvTranspose1d": "Deconv", "ConvTranspose2d": "Deconv", "ConvTranspose3d": "Deconv",
              "BatchNorm3d": "BN", "MaxPool1d": "MaxPool", "MaxPool3d": "MaxPool",
              "AvgPool1d": "AvgPool", "AvgPool3d": "AvgPool"}


@dataclass
class Stmt:
    kind: str  # "layer" | "module" | "seq" | "stack" | "expr"
    attr: str  # attribute name (layer/module/seq) or local name hint (expr)
    inputs: list[str]
    outputs: list[str]
    node: Node | None = None  # layer / expr
    render: Layer | Expr | None = None
    scope: Scope | None = None  # module
    items: list[Stmt] = field(default_factory=list)  # seq, stack
    carry: int = 0  # stack: the input each module's output replaces for the next one
    shared: bool = False  # stack: one module (the same weights) called len(items) times
    reuse: bool = False  # a later call of a layer an earlier statement defines
    index: int | None = None  # module `index` of the nn.ModuleList `attr` (`self.stages[1]`)

    @property
    def head(self) -> tuple[str, ...]:
        """Its attribute path from the module holding it: ('conv1',), ('stages', '1')."""
        return (self.attr,) if self.index is None else (self.attr, str(self.index))

    @property
    def ref(self) -> str:
        """How forward reaches it after `self.`: `conv1`, `stages[1]`."""
        return self.attr if self.index is None else f"{self.attr}[{self.index}]"

    @property
    def local(self) -> str:
        """A name for its result in forward: its attribute's (one stage's: `stage`)."""
        return self.attr if self.index is None else self.attr.removesuffix("s")


@dataclass
class ModuleClass:
    name: str
    sig: tuple
    instances: list[Plan]
    params: list[str] = field(default_factory=list)
    param_paths: dict[tuple, str] = field(default_factory=dict)  # value path -> param
    optional: list[OptionalPart] = field(default_factory=list)  # parts some instances leave out


@dataclass
class Plan:
    """One module instance: its statements and, once classes are known, its values."""

    scope: Scope
    stmts: list[Stmt]
    sig: tuple = ()
    depth: int = 0
    values: dict[tuple, Any] = field(default_factory=dict)  # value path -> value
    cls: ModuleClass | None = None
    # for an instance of a class with optional parts (variants.py): its statement index ->
    # the class's first instance's, and which parts it leaves out
    index_map: dict[int, int] = field(default_factory=dict)
    absent: set[int] = field(default_factory=set)

    def ctor_values(self) -> dict[tuple, Any]:
        """What the parent sees: this instance's class-parameter values."""
        values: dict[tuple, Any] = {}
        for path, param in self.cls.param_paths.items():  # (None: in a part it leaves out)
            if values.get((param,)) is None:
                values[(param,)] = self.values.get(path)
        return values


class Planner:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.plans: dict[int, Plan] = {}  # id(scope) -> plan
        self.loops: dict[int, list[str]] = {}  # id(scope) of a module called in a loop ->
        # the scopes of its calls

    # -- statements ------------------------------------------------------------------------
    def plan(self, scope: Scope) -> Plan:
        tree = self.tree
        names = Namespace()
        owners: dict[tuple, str] = {}  # share key -> the attribute holding that layer
        stmts: list[tuple[int, Stmt]] = []
        for node in scope.nodes:
            render = tree.renders[node.name]
            if isinstance(render, Layer):
                stmt = self.layer_stmt(node, tree.hints.get(node.name, render.hint), names, owners)
            else:
                hint = tree.hints.get(node.name, render.hint)
                stmt = Stmt("expr", identifier(hint), node.inputs,
                            [f"{node.name}:{i}" for i in range(len(node.outputs))], node, render)
            stmts.append((tree.position[node.name], stmt))
        for child in scope.children:
            for node in child.calls:
                stmts.append((tree.position[node.name], self.layer_stmt(node, child.name, names, owners)))
            if child.calls:
                continue
            attr = names.create(identifier(child.name))
            first = min(tree.position[n.name] for n in child.all_nodes())
            stmts.append((first, self.child_stmt(child, attr)))
        ordered = _order([s for _, s in sorted(stmts, key=lambda p: p[0])])
        plan = Plan(scope, self.stacks(ordered, scope, names))
        self.plans[id(scope)] = plan
        return plan

    def layer_stmt(self, node: Node, hint: str, names: Namespace, owners: dict) -> Stmt:
        """A layer call; a layer whose weights an earlier statement of this scope already
        holds is called through that statement's attribute (one module, tied weights)."""
        render = self.tree.renders[node.name]
        key = share_key(render)
        owner = owners.get(key) if key is not None else None
        attr = owner or names.create(identifier(hint))
        if key is not None and owner is None:
            owners[key] = attr
        return Stmt("layer", attr, node.inputs,
                    [f"{node.name}:{i}" for i in range(len(node.outputs))], node, render,
                    reuse=owner is not None)

    def child_stmt(self, child: Scope, attr: str) -> Stmt:
        plan = self.plan(child)
        if _is_chain(plan):
            return Stmt("seq", attr, child.inputs, child.outputs, scope=child, items=plan.stmts)
        return Stmt("module", attr, child.inputs, child.outputs, scope=child)

    def stacks(self, stmts: list[Stmt], scope: Scope, names: Namespace) -> list[Stmt]:
        """Runs of STACK_MIN or more modules of one structure, each feeding the next (see
        `stack_run`), as one "stack" statement each."""
        uses = Counter(ref for stmt in stmts for ref in stmt.inputs) + Counter(scope.outputs)
        result, index = [], 0
        while index < len(stmts):
            run, carry, shared = self.stack_run(stmts, index, uses)
            if len(run) < STACK_MIN:
                result.append(stmts[index])
                index += 1
                continue
            base = re.sub(r"(_?\d+)+$", "", run[0].attr) or "layer"  # (and call numbers)
            if shared:  # one module: the first's name, without a tracer's call number
                base = role_name(run[0].attr)
                attr = run[0].attr if base == run[0].attr else names.create(base)
                self.loops[id(run[0].scope)] = [item.scope.path for item in run]
            else:
                attr = names.create(base if base.endswith("s") else base + "s")
            result.append(Stmt("stack", attr, run[0].inputs, run[-1].outputs, items=run,
                               carry=carry, shared=shared))
            index += len(run)
        return result

    def stack_run(self, stmts: list[Stmt], start: int,
                  uses: Counter) -> tuple[list[Stmt], int, bool]:
        """The modules from `start` on with the first's signature where each one's single
        output is read only by the next, always in the same input position, and the other
        inputs are the same values; that position; whether they hold the same weights."""
        first = stmts[start]
        if first.kind != "module" or len(first.outputs) != 1:
            return [first], 0, False
        weights = self.weights(first)
        shared = bool(weights) and self.weights(stmts[start + 1]) == weights if (
            start + 1 < len(stmts) and stmts[start + 1].kind == "module") else False
        if len(first.inputs) < 2 and not shared:
            return [first], 0, False  # (modules of one input chain as an nn.Sequential, or inline)
        sig = self.signature(self.plans[id(first.scope)])
        run, carry = [first], None
        for stmt in stmts[start + 1:]:
            previous = run[-1].outputs[0]
            if (stmt.kind != "module" or len(stmt.outputs) != 1 or uses[previous] != 1
                    or previous not in stmt.inputs or len(stmt.inputs) != len(first.inputs)
                    or self.signature(self.plans[id(stmt.scope)]) != sig
                    or (self.weights(stmt) == weights) != shared):
                break
            position = stmt.inputs.index(previous)
            same = all(ref == other for i, (ref, other) in enumerate(zip(stmt.inputs, run[-1].inputs))
                       if i != position)
            if not same or carry not in (None, position):
                break
            carry = position
            run.append(stmt)
        return run, carry or 0, shared

    def weights(self, stmt: Stmt) -> tuple:
        """The layers' weights of a module statement, in order (equal: the same module)."""
        plan = self.plans[id(stmt.scope)]
        return tuple(key for item in self.walk(plan) if item.kind == "layer"
                     for key in [share_key(item.render)] if key is not None)

    # -- signatures -------------------------------------------------------------------------
    def signature(self, plan: Plan) -> tuple:
        local = {ref: ("in", i) for i, ref in enumerate(plan.scope.inputs)}
        parts, depth = [], 0
        for index, stmt in enumerate(plan.stmts):
            wiring = tuple(local.get(ref, ref) for ref in stmt.inputs)
            body, child_depth = self.stmt_sig(stmt)
            depth = max(depth, child_depth)
            parts.append((stmt.kind, stmt.attr, wiring, body, stmt.reuse))
            for position, ref in enumerate(stmt.outputs):
                local[ref] = ("stmt", index, position)
        outs = tuple(local[ref] for ref in plan.scope.outputs)
        plan.sig, plan.depth = (tuple(parts), len(plan.scope.inputs), outs), depth + 1
        return plan.sig

    def stmt_sig(self, stmt: Stmt) -> tuple[tuple, int]:
        if stmt.kind == "layer":
            render = stmt.render
            padded = padded_form(render)
            if padded is not None:  # nn.Conv2d(padding=p) or PaddedConv2d(pad=...): one kind
                return (render.template, padded.cls, tuple(padded.args), tuple(render.state)), 0
            return (render.template, render.cls, tuple(render.args), tuple(render.state)), 0
        if stmt.kind == "expr":
            if variable_activation(stmt):  # which one may be a constructor argument
                return (stmt.render.template, "activation"), 0
            return (stmt.render.template, tuple(sorted(stmt.render.attrs.items()))), 0
        if stmt.kind == "module":
            plan = self.plans[id(stmt.scope)]
            return self.signature(plan), plan.depth
        sigs = [self.stmt_sig(item) for item in stmt.items]
        return (stmt.carry, stmt.shared, *(s for s, _ in sigs)), max(d for _, d in sigs)

    # -- classes ---------------------------------------------------------------------------
    def classes(self, root: Scope) -> list[ModuleClass]:
        """Group module instances by signature; deepest classes first."""
        self.plan(root)
        root_plan = self.plans[id(root)]
        _index_groups(root_plan.stmts)
        self.signature(root_plan)
        module_plans = [root_plan] + [
            self.plans[id(s.scope)] for s in self.walk(root_plan) if s.kind == "module"
        ]
        groups: dict[tuple, list[Plan]] = {}
        for plan in module_plans:
            groups.setdefault(plan.sig, []).append(plan)
        classes = [ModuleClass("", sig, plans) for sig, plans in groups.items()]
        classes.sort(key=lambda c: (c.instances[0].depth, -len(c.instances)))
        classes = self.merge_variants(classes, root_plan)
        for cls in classes:
            _unify_padding(cls)
        for cls in classes:
            for plan in cls.instances:
                plan.cls = cls
                plan.values = self.raw_values(plan)
                for number, part in enumerate(cls.optional):
                    plan.values[part.key] = number not in plan.absent
            _assign_params(cls, cls.instances[0] is root_plan)
            flags = {cls.param_paths.get(part.key) for part in cls.optional}
            cls.params.sort(key=lambda name: 2 if name in flags else
                            0 if name.endswith(("channels", "features")) else 1)
        _name_classes(classes, root_plan)
        return classes

    def merge_variants(self, classes: list[ModuleClass], root_plan: Plan) -> list[ModuleClass]:
        """Classes of one depth that are another class less optional parts join it
        (variants.py); the class with the most statements first takes the others."""
        order = sorted(range(len(classes)), key=lambda i: (classes[i].instances[0].depth,
                                                           -len(classes[i].instances[0].stmts), i))
        absorbed: set[int] = set()
        for big_index in order:
            big = classes[big_index]
            if big_index in absorbed or big.instances[0] is root_plan:
                continue
            for index in order:
                other = classes[index]
                if (index == big_index or index in absorbed or other.instances[0] is root_plan
                        or other.instances[0].depth != big.instances[0].depth):
                    continue
                parts = optional_parts(self, big.instances[0], other.instances[0])
                found = _part_numbers(big.optional, parts) if parts is not None else None
                if found is None:
                    continue
                numbers, big.optional = found
                match = _matching(self, big.instances[0], other.instances[0])
                for plan in other.instances:
                    plan.index_map, plan.absent = dict(enumerate(match)), set(numbers)
                big.instances += other.instances
                absorbed.add(index)
        for cls in classes:
            for number, part in enumerate(cls.optional):
                part.flag = flag_name(cls.instances[0], part)
                part.key = ("#optional", str(number))
        return [cls for index, cls in enumerate(classes) if index not in absorbed]

    def layer_path(self, plan: Plan, node_name: str) -> str:
        """The attribute path from `plan`'s module to the layer computing `node_name`
        ('embeddings.word_embeddings', 'blocks[0].fc'): identifiers and indices only."""
        for stmt in plan.stmts:
            for prefix, item in items_of(stmt):
                path = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in prefix)
                if item.kind == "layer" and item.node.name == node_name:
                    return path[1:]
                if item.kind == "module":
                    try:
                        inner = self.layer_path(self.plans[id(item.scope)], node_name)
                    except KeyError:
                        continue
                    return f"{path[1:]}.{inner}"
        raise KeyError(node_name)

    def walk(self, plan: Plan):
        """Every statement, those in an nn.Sequential / nn.ModuleList included (of a module
        called in a loop, the one module)."""
        for stmt in plan.stmts:
            for item in [stmt] + stmt.items[:1 if stmt.shared else None]:
                yield item
                if item.kind == "module":
                    yield from self.walk(self.plans[id(item.scope)])

    def raw_values(self, plan: Plan) -> dict[tuple, Any]:
        values: dict[tuple, Any] = {}
        for index, stmt in enumerate(plan.stmts):
            if variable_activation(stmt):
                values[activation_path(plan.index_map.get(index, index))] = Function(
                    stmt.render.attrs["form"])
            for prefix, item in items_of(stmt):
                values.update({(*prefix, *path): v for path, v in self.item_values(item).items()})
        return values

    def item_values(self, item: Stmt) -> dict[tuple, Any]:
        if item.kind == "layer":
            return {(arg,): value for arg, value in item.render.args.items()}
        if item.kind == "module":
            return self.plans[id(item.scope)].ctor_values()
        return {}


class Function(str):
    """A function as a constructor value (an activation: `activation=F.hardswish`); its
    text is the catalogue's form of the op, never model data."""

    def __repr__(self) -> str:
        return str(self)


def variable_activation(stmt: Stmt) -> bool:
    """An activation of one input and no attributes (relu, hardswish, sigmoid, ...): blocks
    that differ only in such activations are one class taking the function as an argument,
    as torchvision's MobileNetV3 takes `activation_layer`."""
    return (stmt.kind == "expr" and stmt.render.template == "ops/activation.py.jinja"
            and set(stmt.render.attrs) == {"kind", "form"} and len(stmt.inputs) == 1)


def activation_path(index: int) -> tuple:
    return (f"#{index}", "activation")


def items_of(stmt: Stmt) -> list[tuple[tuple[str, ...], Stmt]]:
    """(attribute path, statement) of a statement, or of each module of an nn.Sequential or
    nn.ModuleList (`blocks`, `0`); of a module called in a loop, its first call."""
    if stmt.shared:
        return [((stmt.attr,), stmt.items[0])]
    if stmt.kind in ("seq", "stack"):
        return [((*stmt.head, str(i)), item) for i, item in enumerate(stmt.items)]
    return [(stmt.head, stmt)]


def _index_groups(stmts: list[Stmt]) -> None:
    """The model's modules named `stage_0`, `stage_1`, ... (every number from 0, each
    called once) become one nn.ModuleList `stages`, each called where it was:
    `self.stages[1](x)`, state_dict keys `stages.1.0.conv.weight`. Only in the model's
    own class, which no other instance shares."""
    groups: dict[str, list[tuple[int, Stmt]]] = {}
    for stmt in stmts:
        found = re.fullmatch(r"(.+)_(\d+)", stmt.attr)
        if found and stmt.kind in ("module", "seq") and not stmt.reuse:
            groups.setdefault(found[1], []).append((int(found[2]), stmt))
    taken = {stmt.attr for stmt in stmts}
    for base, members in groups.items():
        plural = base if base.endswith("s") else base + "s"
        if len(members) < 2 or sorted(n for n, _ in members) != list(range(len(members))):
            continue
        if plural in taken or identifier(plural) != plural:  # (not `modules`, a keyword)
            continue
        for number, stmt in members:
            stmt.attr, stmt.index = plural, number


def padded_form(render) -> Layer | None:
    """A convolution as PaddedConvNd(pad=...): `nn.Conv2d(..., padding=p)` is the same
    function as `PaddedConv2d(..., pad=(p, p, p, p))`. None for other layers."""
    if not isinstance(render, Layer) or render.template != "ops/conv2d.py.jinja":
        return None
    match = re.fullmatch(r"(?:nn\.Conv|PaddedConv)(\d)d", render.cls)
    if match is None:
        return None
    rank = int(match.group(1))
    if "pad" in render.args:
        return render
    if "padding" not in render.args:
        return None
    padding = render.args["padding"]
    per_axis = [padding] * rank if isinstance(padding, int) else list(padding)
    pad = tuple(value for value in reversed(per_axis) for value in (value, value))
    args = {("pad" if key == "padding" else key): (pad if key == "padding" else value)
            for key, value in render.args.items()}
    cls = f"PaddedConv{rank}d"
    return Layer(render.template, cls, args, render.state, render.hint, (cls,))


def _unify_padding(cls: ModuleClass) -> None:
    """Where the instances of a class hold, at one place, some a plain convolution with
    symmetric padding and some a PaddedConvNd (TF 'SAME' with a stride: the odd pixel at the
    end), all of them hold a PaddedConvNd: one class, `pad` its argument (MobileNetV3's
    strided and unstrided blocks). Where all agree, each keeps its own form."""
    places: dict[tuple, list[Stmt]] = {}
    for plan in cls.instances:
        for index, stmt in enumerate(plan.stmts):
            for position, (_, item) in enumerate(items_of(stmt)):
                if item.kind == "layer" and padded_form(item.render) is not None:
                    places.setdefault((plan.index_map.get(index, index), position), []).append(item)
    for items in places.values():
        if len({item.render.cls for item in items}) < 2:
            continue
        for item in items:
            item.render = padded_form(item.render)


def _order(stmts: list[Stmt]) -> list[Stmt]:
    """Topological order of statements (children placed when their inputs are ready)."""
    produced = {ref: i for i, s in enumerate(stmts) for ref in s.outputs}
    done: set[int] = set()
    ordered: list[Stmt] = []
    pending = list(range(len(stmts)))
    while pending:
        for index in pending:
            deps = {produced[r] for r in stmts[index].inputs if r in produced} - {index}
            if deps <= done:
                ordered.append(stmts[index])
                done.add(index)
                pending.remove(index)
                break
        else:  # pragma: no cover - structure.py removed cycles
            raise RuntimeError("cyclic statements")
    return ordered


def _is_chain(plan: Plan) -> bool:
    """Only child modules/layers, each feeding the next: an nn.Sequential."""
    stmts = plan.stmts
    if len(stmts) < 2 or any(s.kind not in ("module", "layer") or s.reuse for s in stmts):
        return False
    if len(plan.scope.inputs) != 1 or len(plan.scope.outputs) != 1:
        return False
    expected = plan.scope.inputs[0]
    for stmt in stmts:
        if stmt.inputs != [expected] or len(stmt.outputs) != 1:
            return False
        expected = stmt.outputs[0]
    return expected == plan.scope.outputs[0]


def _part_numbers(known: list[OptionalPart], parts: list[OptionalPart]):
    """The numbers of `parts` among the class's optional parts `known`, and those parts with
    the new ones added; None where one overlaps or touches a known part without being it."""
    known, numbers = list(known), []
    for part in parts:
        same = [n for n, other in enumerate(known) if other.indexes == part.indexes]
        if same:
            if (known[same[0]].result, known[same[0]].passthrough) != (part.result, part.passthrough):
                return None
            numbers.append(same[0])
            continue
        span = set(range(part.indexes[0] - 1, part.indexes[-1] + 2))
        if any(span & set(other.indexes) for other in known):
            return None
        numbers.append(len(known))
        known.append(part)
    return numbers, known


def _matching(planner: Planner, big: Plan, small: Plan) -> list[int]:
    keys = [stmt_key(planner, stmt) for stmt in big.stmts]
    match, j = [], 0
    for stmt in small.stmts:
        key = stmt_key(planner, stmt)
        while keys[j] != key:
            j += 1
        match.append(j)
        j += 1
    return match


def _assign_params(cls: ModuleClass, is_root: bool) -> None:
    paths = list(cls.instances[0].values)
    varying: dict[tuple, list[tuple]] = {}
    for path in paths:
        vector = tuple(plan.values.get(path) for plan in cls.instances)
        present = {repr(value) for value in vector if value is not None}
        if len(present) > 1 and not is_root:
            varying.setdefault(vector, []).append(path)
    for vector in [v for v in varying if None in v]:  # a value of a part some leave out
        whole = next((w for w in varying if None not in w and all(
            a is None or repr(a) == repr(b) for a, b in zip(vector, w))), None)
        if whole is not None:
            varying[whole] += varying.pop(vector)
    flags = {("#optional", str(n)): part.flag for n, part in enumerate(cls.optional)}
    names = Namespace({"self"})
    for vector, group in varying.items():
        if group[0] in flags:
            name = names.create(flags[group[0]])
            cls.params.append(name)
            for path in group:
                cls.param_paths[path] = name
            continue
        name = _param_name([path[-1] for path in group], names.taken)
        name = names.create(name or identifier("_".join(group[0][::len(group[0]) - 1])))
        cls.params.append(name)
        for path in group:
            cls.param_paths[path] = name


def _param_name(leaves: list[str], taken: set[str]) -> str | None:
    """A constructor parameter's name from the layer arguments it sets: the first free one
    of PREFERRED; a width that is some layer's input and another's output is `channels`
    (a bottleneck's inner width, a cell's own width) once `in_channels` is taken."""
    candidates = [name for name in PREFERRED if name in leaves]
    if "in_channels" in leaves and "out_channels" in leaves:
        candidates.insert(1, "channels")
    if not candidates:
        candidates = leaves[:1]
    return next((name for name in candidates if name not in taken or name == "activation"),
                None)


def _name_classes(classes: list[ModuleClass], root_plan: Plan) -> None:
    taken = Namespace({"Constant", "Learned", "PaddedConv2d", "Conv2dSame", "MaxPool2dSame",
                       "AvgPool2dSame", "LayerNorm2d", "RMSNormPlusOne", "BiasAdd", "RotaryEmbedding",
                       *CONV_HELPERS})  # the helper classes
    by_base: dict[str, list[ModuleClass]] = {}
    for cls in classes:
        by_base.setdefault(_base_name(cls), []).append(cls)
    for base, group in by_base.items():
        group.sort(key=lambda c: -len(c.instances))
        main = group[0]
        main.name = taken.create(base)
        for cls in group[1:]:
            cls.name = taken.create(base + _difference(cls, main))


def _base_name(cls: ModuleClass) -> str:
    plan = cls.instances[0]
    kinds = []
    for stmt in plan.stmts:
        if stmt.kind == "layer":
            kinds.append(SHORT_KIND.get(stmt.render.cls.split(".")[-1], "Layer"))
        elif stmt.kind == "expr" and stmt.render.template.endswith("activation.py.jinja"):
            kinds.append(stmt.render.attrs["kind"].capitalize())
        else:
            kinds = []
            break
    if 2 <= len(kinds) <= 4 and plan.cls is not None and plan.scope.path:
        return "".join(dict.fromkeys(kinds))
    return class_name(plan.scope.class_hint or plan.scope.name or "Model")


def _difference(cls: ModuleClass, main: ModuleClass) -> str:
    """A readable suffix saying what this variant does that `main` does not: `Projection`
    (an extra convolution, e.g. a projection shortcut), `Downsample` (a stride or a strided
    view where `main` has none), else the first attribute whose statement differs."""
    ours = {part[1] for part in cls.sig[0]}
    theirs = {part[:2]: part for part in main.sig[0]}
    missing = [part[1] for part in main.sig[0] if part[1] not in ours]
    extra = [part for part in cls.sig[0] if part[:2] not in theirs]  # (a layer where `main`
    # has an expression of that name, an optional one: a projection shortcut)
    words = []
    if any(part[0] == "layer" and "Conv" in part[3][1] for part in extra):
        words.append("Projection")
    if _strided(cls) and not _strided(main):
        words.append("Downsample")
    if words:
        return "".join(words)
    if missing and not extra:
        return "Without" + class_name(missing[0])
    for part in extra + list(cls.sig[0]):
        if theirs.get(part[:2]) != part:
            kind = part[3][1].split(".")[-1] if part[0] == "layer" else ""
            return class_name(part[1]) + SHORT_KIND.get(kind, "")
    return "Variant"


def _strided(cls: ModuleClass) -> bool:
    """Some layer of the class (or of a child) has a stride above 1, or it takes every
    n-th pixel (`x[:, :, ::2, ::2]`)."""
    plan = cls.instances[0]
    if any(path[-1] == "stride" and value not in (1, (1, 1)) for path, value in plan.values.items()):
        return True
    return any(stmt.kind == "expr" and any(step not in (None, 1) for *_, step in
                                           stmt.render.attrs.get("index", ()))
               for stmt in plan.stmts)
