"""IR graph (after passes) -> the text of model.py and its state_dict -> IR weight map."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codegen.backends.pytorch.blocks import find_blocks
from codegen.backends.pytorch.modules import ModuleClass, Plan, Planner, items_of
from codegen.backends.pytorch.naming import doc_text, identifier, role_names
from codegen.backends.pytorch.render import ClassRenderer, environment, format_source, scope_pattern
from codegen.backends.pytorch.structure import build_tree, interfaces
from codegen.ir.graph import Graph
from codegen.ir.passes.layout import spatial_ranks


@dataclass
class Generated:
    source: str  # model.py
    state: dict[str, str]  # state_dict key -> IR weight name (or NUM_BATCHES)
    classes: int
    notes: list[str]
    layers: dict[str, str]  # module path ('block1.0.conv1.conv') -> the IR node it computes
    # where the code of each IR node is (for errors of the generated code, see check.py):
    statements: dict = field(default_factory=dict)  # class -> its forward's statements
    plans: dict = field(default_factory=dict)  # module path ('' = the model) -> its Plan


def generate(graph: Graph, *, templates: Path | None = None) -> Generated:
    planner, classes, root_plan = _plan(graph, loops=True)
    if _untied(graph, _state(planner, root_plan)):  # a block reused across depth (depth.py)
        planner, classes, root_plan = _plan(graph, loops=False)  # that no loop took
    tree = planner.tree
    renderer = ClassRenderer(environment(templates), planner)
    renderer.role = lambda ref: role_names(graph, [ref])[0]
    texts = []
    for cls in classes:
        if cls is root_plan.cls:
            continue
        texts.append(renderer.class_text(cls, doc=doc_text(_class_doc(cls, planner)),
                                         arg_names=role_names(graph, cls.instances[0].scope.inputs)))
    model_doc = f"TF scope {tree.root.path or '(root)'}: the whole network."
    texts.append(renderer.class_text(root_plan.cls, doc=doc_text(model_doc),
                                     arg_names=forward_names(graph)))
    helpers = renderer.helper_texts()
    text = renderer.env.get_template("model.py.jinja").render(
        title=doc_text(f"{root_plan.cls.name} converted from TensorFlow "
                       f"({graph.source.get('model', '?')})."),
        source_line=doc_text(_source_line(graph)),
        input_desc=doc_text(_inputs(graph)),
        output_desc=doc_text(_outputs(graph)),
        notes=[doc_text(note) for note in tree.notes],
        helpers=helpers,
        uses_math=any("math." in h for h in helpers),
        classes=texts,
        model_class=root_plan.cls.name,
        fusable=renderer.fusable,
        volumes=any(len(entry.out_shape) == 5 for entry in graph.weights.values()),
        bfloat16=any(entry.dtype == "bfloat16" for entry in graph.weights.values()),
    )
    state = _state(planner, root_plan)
    layers = _layers(planner, root_plan)
    return Generated(format_source(text), state, len(classes), tree.notes, layers,
                     renderer.statements, dict(_plans(planner, root_plan)))


def _plan(graph: Graph, *, loops: bool) -> tuple[Planner, list[ModuleClass], Plan]:
    tree = build_tree(graph, loops=loops)
    find_blocks(tree, graph)
    interfaces(tree, graph)
    planner = Planner(tree)
    classes = planner.classes(tree.root)
    return planner, classes, planner.plans[id(tree.root)]


def _untied(graph: Graph, state: dict[str, str]) -> bool:
    """Some source variable is held by two parameters (fine-tuning would untie them)."""
    weights = [weight for weight in state.values() if weight in graph.weights]
    return len(weights) != len(set(weights))


def forward_names(graph: Graph) -> list[str]:
    """The model's forward parameters: the source's input names, so that a caller may pass
    them by keyword (`model(chars=ids)`), one input or several. A lone input whose name
    Python cannot take as it is (TF-slim's `input`, a builtin; `x:0`) is `x`."""
    names = [identifier(i.name) for i in graph.inputs]
    if len(names) == 1 and names[0] != graph.inputs[0].name:
        return ["x"]
    return names


def _class_doc(cls: ModuleClass, planner: Planner) -> str:
    paths = [plan.scope.path for plan in cls.instances]
    count = len(paths)
    where = scope_pattern(paths)
    loops = [planner.loops[id(plan.scope)] for plan in cls.instances if id(plan.scope) in planner.loops]
    if len(loops) == count:  # ALBERT's layer: one module, one set of weights
        where = scope_pattern([path for paths in loops for path in paths])
        calls = " and ".join(str(len(paths)) for paths in loops)
        return (f"TF scope {where} (one module called {calls} times)." if len(loops) == 1
                else f"TF scope {where} ({len(loops)} modules, called {calls} times).")
    if cls.instances[0].scope.found:
        return (f"Found by graph structure in TF scope {where.rpartition('/')[0] or '(root)'}"
                + (f" ({count} instances)." if count > 1 else "."))
    return f"TF scope {where}" + (f" ({count} instances)." if count > 1 else ".")


def _source_line(graph: Graph) -> str:
    source = graph.source
    weights = f", weights {source['weights']}" if source.get("weights") else ""
    return f"Source: {source.get('framework', 'tensorflow')} model {source.get('model', '?')}{weights}."


def _shape(shape: list) -> str:
    return "[" + ", ".join("N" if i == 0 and s is None else ("?" if s is None else str(s))
                           for i, s in enumerate(shape)) + "]"


def _inputs(graph: Graph) -> str:
    layouts = {rank: text for rank, text in ((4, " (NCHW)"), (5, " (NCDHW)"))
               if rank in spatial_ranks(graph)}
    return "; ".join(f"{i.dtype} {_shape(i.shape)}{layouts.get(len(i.shape), '')} "
                     f"(TF {i.tf_name or i.name!r})"
                     for i in graph.inputs)


def _outputs(graph: Graph) -> str:
    return "; ".join(f"{_shape(graph.tensor(o.source).shape)} (TF node {o.name!r})"
                     for o in graph.outputs)


def _layer_items(planner: Planner, plan: Plan, prefix: str = ""):
    """(module path, layer stmt) for every layer of the model, the modules of an
    nn.Sequential or nn.ModuleList included."""
    for stmt in plan.stmts:
        for parts, item in items_of(stmt):
            path = prefix + ".".join(parts)
            if item.kind == "layer":
                yield path, item
            elif item.kind == "module":
                yield from _layer_items(planner, planner.plans[id(item.scope)], f"{path}.")


def _plans(planner: Planner, plan: Plan, path: str = ""):
    """(module path, plan) of the model and of every module of a class of model.py."""
    yield path, plan
    for stmt in plan.stmts:
        for parts, item in items_of(stmt):
            if item.kind == "module":
                yield from _plans(planner, planner.plans[id(item.scope)],
                                  f"{path}.{'.'.join(parts)}" if path else ".".join(parts))


def _state(planner: Planner, plan: Plan) -> dict[str, str]:
    return {f"{path}.{suffix}": weight for path, item in _layer_items(planner, plan)
            for suffix, weight in item.render.state.items()}


def _layers(planner: Planner, plan: Plan) -> dict[str, str]:
    return {path: item.node.name for path, item in _layer_items(planner, plan)}
