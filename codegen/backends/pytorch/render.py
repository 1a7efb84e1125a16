"""Classes -> Python source: Jinja templates for the text, black for the layout."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import black
import jinja2

from codegen.backends.pytorch.conv_ops import CONV_HELPERS
from codegen.backends.pytorch.modules import (
    ModuleClass,
    Plan,
    Stmt,
    activation_path,
    variable_activation,
)
from codegen.backends.pytorch.naming import Namespace, identifier
from codegen.backends.pytorch.ops import FORM_KEYS
from codegen.errors import CodegenError
from codegen.ir.graph import split_ref
from codegen.resources import op_catalogue, templates_dir

# blocks in an nn.Sequential / nn.ModuleList whose class takes more arguments than this get
# them by position, one row each, as torchvision's MobileNetV3 config table
TABLE_ARGS = 4
INLINE_LIMIT = 60  # a single-use value is written inside its reader when this short
# Activations whose catalogue entry says "inplace" are written in place (`F.relu(x,
# inplace=True)`, as torchvision's ResNets do) when their input is a fresh tensor nothing else
# reads: no allocation, one pass less over memory (~4% of ResNet V2 152's CPU time). Their
# backward needs only their result, so training works the same.
# Templates whose output is always a new tensor (never a view of an input or a parameter)
# that their backward does not read, so it may be overwritten.
FRESH_OUTPUT_TEMPLATES = {"ops/conv2d.py.jinja", "ops/linear.py.jinja", "ops/batch_norm.py.jinja",
                          "ops/layer_norm.py.jinja", "ops/binary.py.jinja"}
HELPER_DEPENDENCIES = {name: ("same_pad",) for name in (
    "Conv1dSame", "Conv2dSame", "Conv3dSame", "MaxPool1dSame", "MaxPool2dSame", "MaxPool3dSame",
    "AvgPool1dSame", "AvgPool2dSame", "AvgPool3dSame")}
HELPER_DEPENDENCIES["tf_resize"] = ("tf_resize_taps",)


def environment(user_dir: Path | None = None) -> jinja2.Environment:
    """User templates first (single files override ours by relative path).

    Compiled templates are cached by Jinja in a private folder of this user (keyed on each
    template's source, so an edited template is compiled again): a build then does not
    spend a twentieth of a second compiling the same templates every time."""
    loaders = [jinja2.FileSystemLoader(str(user_dir))] if user_dir else []
    loaders.append(jinja2.FileSystemLoader(str(templates_dir())))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        bytecode_cache=_bytecode_cache(),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return jinja2.FileSystemBytecodeCache()  # <tmp>/_jinja2-cache-<uid>, mode 0700
    except (OSError, RuntimeError):  # no usable temporary folder: compile every time
        return None


def literal(value: Any) -> str:
    """Python source for a constructor value (model data only ever reaches code as repr)."""
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return f"float({str(value)!r})"
    return repr(value)


class ClassRenderer:
    def __init__(self, env: jinja2.Environment, planner) -> None:
        self.env = env
        self.planner = planner
        self.helpers: set[str] = set()
        self.layer_states: dict[str, str] = {}  # `lstm_h[0]` -> `lstm_h`, a layer's state
        self.fusable = False  # some class has a BatchNorm right after a convolution
        # class name -> its forward's statements, each as the (index in the plan's stmts,
        # expression text) of the IR statements written in it, its own first: where a
        # failing line of model.py came from (codegen/backends/pytorch/check.py)
        self.statements: dict[str, list[list[tuple[int, str | None]]]] = {}
        self.groups: list[list[tuple[int, str | None]]] = []  # those of the last forward()
        self.role: Callable[[str], str] = lambda ref: "x"  # a value's name by its role

    def macro(self, template: str, name: str):
        return getattr(self.env.get_template(template).module, name)

    # -- __init__ ------------------------------------------------------------------------
    def value(self, cls: ModuleClass, plan: Plan, path: tuple) -> str:
        return cls.param_paths.get(path) or literal(plan.values[path])

    def item_init(self, cls: ModuleClass, plan: Plan, prefix: tuple, item: Stmt) -> str:
        if item.kind == "layer":
            render = item.render
            self.helpers.update(render.helpers)
            args = {arg: self.value(cls, plan, (*prefix, arg)) for arg in render.args}
            text = str(self.macro(render.template, "init")(render.cls, args))
            if "untrained" in args:  # parameters the source does not train (ops.render_op)
                text = f"untrained({text}, {args['untrained']})"
            return text
        child = self.planner.plans[id(item.scope)]
        args = [self.value(cls, plan, (*prefix, param)) for param in child.cls.params]
        if len(prefix) > 1 and len(args) > TABLE_ARGS:  # a row of a table of blocks
            return f"{child.cls.name}({', '.join(args)})"
        return f"{child.cls.name}({', '.join(_call_args(child.cls.params, args))})"

    def init_text(self, cls: ModuleClass, plan: Plan, stmt: Stmt) -> str:
        if stmt.shared:  # one module, called in a loop
            return self.item_init(cls, plan, (stmt.attr,), stmt.items[0])
        if stmt.kind not in ("seq", "stack"):
            return self.item_init(cls, plan, stmt.head, stmt)
        texts = [self.item_init(cls, plan, (*stmt.head, str(i)), item)
                 for i, item in enumerate(stmt.items)]
        runs = _runs(texts)
        if stmt.kind == "stack":  # nn.ModuleList([TransformerLayer() for _ in range(12)])
            if len(runs) == 1:
                return f"nn.ModuleList([{texts[0]} for _ in range({len(texts)})])"
            return f"nn.ModuleList([{', '.join(texts)}])"
        parts = []
        for text, count in runs:
            parts += [f"*[{text} for _ in range({count})]"] if count >= 3 else [text] * count
        return f"nn.Sequential({', '.join(parts)})"

    # -- forward -------------------------------------------------------------------------------
    def forward(self, plan: Plan, arg_names: list[str] | None = None) -> tuple[list[str], list[str], str]:
        scope = plan.scope
        names = Namespace({"self"})
        args = arg_names or (["x"] if len(scope.inputs) == 1 else [f"x{i}" for i in range(len(scope.inputs))])
        args = [names.create(a) for a in args]
        values = dict(zip(scope.inputs, args))
        uses = Counter(ref for stmt in plan.stmts for ref in stmt.inputs) + Counter(scope.outputs)
        returned_once = {ref for ref in scope.outputs if uses[ref] == 1} if len(scope.outputs) == 1 else set()
        lines = []
        fresh: set[str] = set()  # values that are new tensors no one else holds
        producers = {ref: stmt for stmt in plan.stmts for ref in stmt.outputs}
        within: dict[str, list] = {}  # a value written inside its reader -> the stmts in it
        self.groups = []  # one per statement of forward

        def inside(refs) -> list:
            return [entry for ref in refs for entry in within.get(ref, [])]

        parts = _parts(plan)
        opened: tuple[int, int, str] | None = None  # an optional part's first line, group, name
        for index, stmt in enumerate(plan.stmts):
            part = parts.get(index)
            if part is not None and index == part.indexes[0]:  # `if self.use_se:`
                source = part.passthrough
                if part.shared:  # `h = x`, then `if ...: h = f(x)`; x is read later
                    layers = [plan.stmts[i].attr for i in part.indexes if plan.stmts[i].kind != "expr"]
                    name = names.create(identifier((layers or [producers[part.result].local])[0]))
                    lines.append(f"{name} = {values[source]}")
                    self.groups.append(inside([source]))
                    opened = (len(lines), len(self.groups), name)
                else:
                    if not values[source].isidentifier():
                        producer = producers.get(source)
                        name = names.create(identifier(producer.local if producer else "x"))
                        lines.append(f"{name} = {values[source]}")
                        self.groups.append(inside([source]))
                        values[source] = name
                    opened = (len(lines), len(self.groups), values[source])
                lines.append(f"if self.{plan.cls.param_paths[part.key]}:")
            last = part is not None and index == part.indexes[-1]
            self.statement(plan, index, stmt, names, values, lines, fresh, uses, producers,
                           returned_once, within, inside,
                           target=opened[2] if last and stmt.outputs == [part.result] else None)
            if last:
                start, group, name = opened
                if values[part.result] != name:
                    lines.append(f"{name} = {values[part.result]}")
                    self.groups.append(inside([part.result]))
                lines[start + 1:] = ["    " + line for line in lines[start + 1:]]
                self.groups[group:] = [[entry for entry in self.groups[group:] for entry in entry]]
                values[part.result] = name
                fresh.discard(part.result)
        result = ", ".join(values[ref] for ref in scope.outputs)
        self.groups.append(inside(scope.outputs))  # the return statement
        return args, lines, result

    def statement(self, plan, index, stmt, names, values, lines, fresh, uses, producers,
                  returned_once, within, inside, target: str | None = None) -> None:
        """Write one statement of forward (or fold it into its reader); `target`: the name
        its result is assigned to (an optional part's last statement)."""
        if stmt.kind == "stack":
            for position, ref in enumerate(stmt.inputs):  # (not computed again each time)
                if position != stmt.carry and not values[ref].isidentifier():
                    name = names.create(self.role(ref))
                    lines.append(f"{name} = {values[ref]}")
                    self.groups.append(inside([ref]))
                    values[ref] = name
                    within.pop(ref, None)
            loop = self.loop(stmt, names, values, plan.scope.inputs, uses)
            lines += loop
            rest = [ref for i, ref in enumerate(stmt.inputs) if i != stmt.carry]
            if not loop[0].startswith("for "):  # `hidden = first`
                self.groups.append(inside(stmt.inputs[stmt.carry:stmt.carry + 1]))
            self.groups.append([(index, None), *inside(rest)])
            return
        owned = {ref for ref in stmt.inputs if ref in fresh and uses[ref] == 1}
        into = _accumulator(stmt, owned, producers)
        if into is not None:  # `total += other`: the sum lands in a fresh operand
            named = values[into].isidentifier()
            total = values[into] if named else names.create(identifier(producers[into].local))
            other = next(ref for ref in stmt.inputs if ref != into)
            text = self.call_text(stmt, [total, values[other]], inplace=True)
            if text.startswith(f"{total} += "):  # (a user's binary template may not have it)
                lines += ([] if named else [f"{total} = {values[into]}"]) + [text]
                self.groups += ([] if named else [inside([into])])
                self.groups.append([(index, None), *inside([other])])
                values[into] = values[stmt.outputs[0]] = total
                fresh.add(stmt.outputs[0])
                return
        inplace = _in_place(stmt) and stmt.inputs[0] in owned
        text = self.call_text(stmt, [values[ref] for ref in stmt.inputs], inplace=inplace,
                              plan=plan)
        if _fresh_output(stmt):
            fresh.update(stmt.outputs)
        written = [(index, text), *inside(stmt.inputs)]
        if stmt.kind == "layer" and stmt.render.unpack:  # `lstm, (h, c) = self.lstm(x)`
            lines.append(self.unpacked(stmt, text, names, uses, values))
            self.groups.append(written)
            return
        single = len(stmt.outputs) == 1 and uses[stmt.outputs[0]] == 1
        repeat = (stmt.kind == "expr" and stmt.render.repeat  # (of a name: nothing is
                  and all(values[ref].isidentifier() for ref in stmt.inputs))  # recomputed)
        if target is None and (repeat or single and (stmt.outputs[0] in returned_once
                                                     or self.inlinable(stmt, text))):
            values[stmt.outputs[0]] = text
            within[stmt.outputs[0]] = written
            return
        named = stmt.render.output_names if stmt.kind == "expr" else ()
        names_of = named or [stmt.local] * len(stmt.outputs)
        if names_of == ["x"] and self.role(stmt.outputs[0]) == "attention_mask":
            names_of = ["attention_mask"]  # (a mask made from the inputs, e.g. hoisted)
        targets = [target or names.create(identifier(name)) for name in names_of]
        lines.append(f"{', '.join(targets)} = {text}")
        self.groups.append(written)
        values.update(zip(stmt.outputs, targets))

    def loop(self, stmt: Stmt, names: Namespace, values: dict, arguments: list[str],
             uses: Counter) -> list[str]:
        """An nn.ModuleList's modules called in turn, each on the one before's output
        (`for layer in self.transformer_layers: hidden_states = layer(hidden_states, mask)`),
        or one module called N times (`for _ in range(3): hidden_states = self.layer(...)`);
        the carried value named by its role, or the forward argument it is when nothing
        else reads that."""
        carried = stmt.inputs[stmt.carry]
        if not stmt.shared:
            hidden = names.create(self.role(carried))
        elif uses[carried] == 1 and (carried in arguments or re.fullmatch(
                re.escape(self.role(carried)) + r"(_\d+)?", values[carried])):
            hidden = values[carried]  # (an argument, or the loop before's result)
        else:
            hidden = names.create(self.role(carried))
        args = [values[ref] for ref in stmt.inputs]
        first, args[stmt.carry] = args[stmt.carry], hidden
        values[stmt.outputs[0]] = hidden
        if stmt.shared:
            start = [f"{hidden} = {first}"] if first != hidden else []
            return start + [f"for _ in range({len(stmt.items)}):",
                            f"    {hidden} = self.{stmt.attr}({', '.join(args)})"]
        layer = names.create("layer")
        return [f"{hidden} = {first}", f"for {layer} in self.{stmt.attr}:",
                f"    {hidden} = {layer}({', '.join(args)})"]

    def unpacked(self, stmt: Stmt, text: str, names: Namespace, uses: Counter, values: dict) -> str:
        """The assignment of a layer that returns a structure (nn.LSTM's output, (h, c));
        outputs no one reads are `_` (all the states at once when none is read)."""
        render, targets = stmt.render, []
        named = render.output_names or [stmt.attr + suffix for suffix in render.state_names]
        for ref, name, read in zip(stmt.outputs, named, render.outputs):
            if uses[ref]:
                targets.append(names.create(identifier(name)))
                values[ref] = read.format(targets[-1])
                self.layer_states[values[ref]] = targets[-1]  # `h[0]` of `h` [1, N, units]
            else:
                targets.append("_")
        if all(target == "_" for target in targets[1:]):
            return f"{targets[0]}, _ = {text}"
        return f"{render.unpack.format(*targets)} = {text}"

    @staticmethod
    def inlinable(stmt: Stmt, text: str) -> bool:
        binary = stmt.kind == "expr" and stmt.render.template.endswith("binary.py.jinja")
        return not binary and len(text) <= INLINE_LIMIT

    def call_text(self, stmt: Stmt, inputs: list[str], *, inplace: bool = False,
                  plan: Plan | None = None) -> str:
        if stmt.kind == "expr":
            render = stmt.render
            param = self.activation_param(plan, stmt)
            if param is not None:  # the activation is the constructor's argument
                return f"self.{param}({inputs[0]})"
            self.helpers.update(render.helpers)
            # `kind` and the catalogue's forms pick the text; every other value is data -> repr
            attrs = {key: value if key in ("kind", *FORM_KEYS) else literal(value)
                     for key, value in render.attrs.items()}
            if render.attrs.get("kind") == "tied":  # the parameter of a layer of this module
                attrs["weight"] = f"self.{self.planner.layer_path(plan, render.attrs['owner'])}.weight"
            if inplace:
                attrs["inplace"] = True
            return str(self.macro(render.template, "forward")(inputs, attrs))
        if stmt.kind == "layer" and stmt.render.call:  # inputs in a structure (nn.LSTM's states)
            text = stmt.render.call.format(*inputs)
            for value, state in self.layer_states.items():  # h[0][None] is h itself
                text = text.replace(f"{value}[None]", state)
            return f"self.{stmt.ref}({text})"
        return f"self.{stmt.ref}({', '.join(inputs)})"

    @staticmethod
    def activation_param(plan: Plan | None, stmt: Stmt) -> str | None:
        if plan is None or plan.cls is None or not variable_activation(stmt):
            return None
        index = next(i for i, other in enumerate(plan.stmts) if other is stmt)
        return plan.cls.param_paths.get(activation_path(index))

    # -- whole class ------------------------------------------------------------------------
    def class_text(self, cls: ModuleClass, *, doc: str, arg_names: list[str] | None = None) -> str:
        plan = cls.instances[0]
        functions = dict.fromkeys(param for path, param in cls.param_paths.items()
                                  if path[-1] == "activation" and path[0].startswith("#"))
        inits = [(param, param) for param in functions]  # `self.activation = activation`
        parts = _parts(plan)
        flags = list(dict.fromkeys(cls.param_paths[part.key] for part in cls.optional))
        inits += [(flag, flag) for flag in flags]  # `self.use_se = use_se`
        for index, stmt in enumerate(plan.stmts):
            if stmt.kind == "expr" or stmt.reuse:
                continue
            part = parts.get(index)
            if stmt.index is not None:  # one nn.ModuleList for the model's `stage_0`, ...
                if stmt.index == 0:
                    members = [self.init_text(cls, plan, other) for other in plan.stmts
                               if other.attr == stmt.attr and other.index is not None]
                    inits.append((stmt.attr, f"nn.ModuleList([{', '.join(members)}])"))
                continue
            if part is None:
                inits.append((stmt.attr, self.init_text(cls, plan, stmt)))
                continue
            # the layers of an optional part: None where it is left out
            optional = [plan.stmts[i] for i in part.indexes if plan.stmts[i].kind != "expr"]
            if stmt is optional[0]:
                inits.append(("", " = ".join(f"self.{s.attr}" for s in optional) + " = None"))
                inits.append(("", f"if {cls.param_paths[part.key]}:"))
            inits.append(("", f"    self.{stmt.attr} = {self.init_text(cls, plan, stmt)}"))
        args, lines, result = self.forward(plan, arg_names)
        self.statements[cls.name] = self.groups
        outputs = len(plan.scope.outputs)
        returns = "torch.Tensor" if outputs == 1 else f"tuple[{', '.join(['torch.Tensor'] * outputs)}]"
        pairs = tuple(conv_bn_pairs(plan))
        self.fusable = self.fusable or bool(pairs)
        return self.env.get_template("module.py.jinja").render(
            name=cls.name, doc=doc, params=cls.params, inits=inits, args=args,
            lines=lines, result=result, returns=returns, pairs=pairs,
        )

    def helper_texts(self) -> list[str]:
        needed = set(self.helpers)
        for helper in list(needed):
            needed.update(HELPER_DEPENDENCIES.get(helper, ()))
        module = self.env.get_template("helpers.py.jinja").module
        order = ["same_pad", "PaddedConv2d", "Conv2dSame", "MaxPool2dSame",
                 "AvgPool2dSame", *CONV_HELPERS, "LayerNorm2d", "RMSNormPlusOne", "BiasAdd", "Constant", "Learned",
                 "PositionEmbedding", "RotaryEmbedding", "rotate_half", "apply_rotary_pos_emb", "relative_position_bucket", "AlibiBias", "untrained", "one_bias", "GRUResetBefore", "Masked",
                 "tf_resize_taps", "tf_resize",
                 "fake_quant", "quantize_dequantize", "crop_and_resize", "non_max_suppression",
                 "combined_non_max_suppression", "lstm_block_cell",
                 "mirror_pad", "reverse_sequence", "unique_in_order", "dynamic_stitch",
                 "max_pool2d_with_argmax", "hue_chroma_value", "hsv_to_rgb", "adjust_hue",
                 "adjust_saturation"]
        return [str(getattr(module, name)()) for name in order if name in needed]


def _parts(plan: Plan) -> dict:
    """Statement index -> the optional part (variants.py) it belongs to, in `plan`'s class."""
    if plan.cls is None:
        return {}
    return {index: part for part in plan.cls.optional for index in part.indexes}


def _call_args(params: list[str], values: list[str]) -> list[str]:
    """Leading channel counts by position, as timm writes `ConvBnAct(in_chs, out_chs, ...)`;
    the rest by keyword, where a bare number would puzzle a reader (`stride=2`)."""
    args, positional = [], True
    for param, value in zip(params, values):
        positional = positional and param.endswith(("channels", "features")) and len(args) < 2
        args.append(value if positional else f"{param}={value}")
    return args


CONVOLUTIONS = {"nn.Conv2d", "PaddedConv2d", "Conv2dSame"}


def conv_bn_pairs(plan: Plan) -> list[tuple[str, str]]:
    """(conv, norm) attributes where the BatchNorm reads the convolution's output and
    nothing else does: `fuse()` may fold the one into the other for inference. Layers
    called more than once (shared weights) are left apart."""
    counts = Counter(stmt.attr for stmt in plan.stmts if stmt.kind == "layer")
    uses = Counter(ref for stmt in plan.stmts for ref in stmt.inputs) + Counter(plan.scope.outputs)
    producers = {ref: stmt for stmt in plan.stmts for ref in stmt.outputs}
    pairs = []
    # a pair inside one optional part is None where the part is left out (fuse() skips it)
    part_of = {plan.stmts[index].attr: id(part) for index, part in _parts(plan).items()}
    for stmt in plan.stmts:
        conv = producers.get(stmt.inputs[0]) if stmt.inputs else None
        if (_layer_cls(stmt) == "nn.BatchNorm2d" and conv is not None
                and _layer_cls(conv) in CONVOLUTIONS and uses[stmt.inputs[0]] == 1
                and counts[stmt.attr] == counts[conv.attr] == 1
                and part_of.get(stmt.attr) == part_of.get(conv.attr)):
            pairs.append((conv.attr, stmt.attr))
    return pairs


def _layer_cls(stmt: Stmt) -> str:
    return stmt.render.cls if stmt.kind == "layer" else ""


def _fresh_output(stmt: Stmt) -> bool:
    """Its output is a new tensor that its own backward does not need."""
    if stmt.kind not in ("layer", "expr") or stmt.render.template not in FRESH_OUTPUT_TEMPLATES:
        return False
    # (pow's backward reads its result: d/dy x**y = x**y ln x; the catalogue says so)
    return stmt.kind == "layer" or not op_catalogue()[stmt.node.op].get("saves_output", False)


def _accumulator(stmt: Stmt, owned: set[str], producers: dict[str, Stmt]) -> str | None:
    """For `a + b` where a or b is a fresh tensor no one else reads and already has the
    sum's shape and dtype: that operand (the first such), to be written `a += b`, as
    torchvision writes `out += identity`. No new tensor for the residual stream (~3% of
    ResNet V2 152's CPU time); an add's backward reads neither operand, so training works
    the same."""
    if not (stmt.kind == "expr" and stmt.render.template == "ops/binary.py.jinja"
            and stmt.render.attrs.get("kind") == "add" and len(set(stmt.inputs)) == 2):
        return None
    result = stmt.node.outputs[0]
    for ref in stmt.inputs:
        if ref not in owned or producers[ref].node is None:
            continue
        info = producers[ref].node.outputs[split_ref(ref)[1]]
        if info.shape == result.shape and info.dtype == result.dtype:
            return ref
    return None


def _in_place(stmt: Stmt) -> bool:
    """An activation its catalogue entry allows to overwrite its input."""
    return (stmt.kind == "expr" and stmt.render.template == "ops/activation.py.jinja"
            and op_catalogue()[stmt.node.op].get("inplace", False))


def _runs(texts: list[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for text in texts:
        if runs and runs[-1][0] == text:
            runs[-1] = (text, runs[-1][1] + 1)
        else:
            runs.append((text, 1))
    return runs


def scope_pattern(paths: list[str]) -> str:
    """'a/unit_1/b', 'a/unit_7/b' -> 'a/unit_*/b'."""
    parts = [p.split("/") for p in paths]
    if len({len(p) for p in parts}) != 1:
        return paths[0]
    out = []
    for column in zip(*parts):
        out.append(column[0] if len(set(column)) == 1 else re.sub(r"\d+", "*", column[0]))
    return "/".join(out)


def format_source(text: str) -> str:
    """Black-formatted source; rendered text that is not Python is an error, never written."""
    try:
        return black.format_str(text, mode=black.Mode())
    except black.InvalidInput as exc:
        where = str(exc).strip().splitlines()[0]
        raise CodegenError(f"the rendered model.py is not valid Python ({where}); if you pass "
                           "--templates, check your templates, otherwise please report it") from None
