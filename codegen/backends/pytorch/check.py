"""`codegen build` proves that what it writes runs: before the staged output folder is swapped
in, its model.py is imported, the model is made with the staged weights, and it runs once per
draw of sample inputs (codegen/sample_inputs.py: each unknown size at two values, fixed sizes
as they are; batch 2 then 1 where the batch is unknown) under torch.no_grad(). A model with
more than IN_MEMORY_BYTES of weights runs on the meta device instead: every shape and dtype
is followed, no weight is read, so the build of a billion-parameter model stays small.

A failure is a GeneratedCodeError naming the IR node whose code failed: the traceback's
deepest frame in a class of model.py gives the class's forward statement and, by the column
of the failing call, the expression within it; the module instance of that frame gives which
instance of the class, so which node (ClassRenderer.statements, Generated.plans).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

from codegen.dtypes import to_torch
from codegen.errors import GeneratedCodeError
from codegen.sample_inputs import random_inputs, torch_inputs, varies

CHECK_BATCHES = (2, 1)  # where the batch is unknown: two sizes, small ones (build stays fast)
# weights above this are not loaded: the model runs on PyTorch's meta device, which follows
# every shape and dtype without values, so a billion-parameter build stays within ~1 GB
IN_MEMORY_BYTES = 512 << 20


def check_runs(staged: Path, out_dir: Path, io: dict, generated, graph, *, merged: bool,
               templates: Path | None = None) -> None:
    """Run the staged model on each draw of sample inputs; raise GeneratedCodeError if it fails.
    `merged`: model.py holds the user's edits; `templates`: the user's --templates folder.

    The model is build_model() made on the meta device with the staged weights assigned (no
    random init, no copy: ResNet V2 152 in 0.5 s instead of load_model()'s 2-5 s); only if
    that fails does load_model() run, so a failure is always reported from what a user runs."""
    import torch

    target, weights = Path(out_dir) / "model.py", Path(staged) / "weights"
    advice = _advice(merged, templates)
    try:
        module = _import(Path(staged) / "model.py")
    except Exception as exc:  # noqa: BLE001 - the generated code's own failure
        raise GeneratedCodeError(f"{target}: importing it fails ({_exception(exc)}); nothing "
                                 f"was written; {advice}") from None
    threads = torch.get_num_threads()
    # one thread: a smoke run gains little from more, and on a busy machine several threads
    # waiting for each other made ResNet V2 152's run 10x slower (0.4 s -> 5 s per image)
    torch.set_num_threads(1)
    try:
        shapes_only = _weight_bytes(weights) > IN_MEMORY_BYTES
        model = _meta_model(module, weights) if shapes_only else _quick_model(module, weights)
        quick = model is not None and not shapes_only
        model = model or _load_model(module, weights, target, advice)
        for draw, batch in list(enumerate(CHECK_BATCHES))[:2 if varies(io) else 1]:
            inputs = torch_inputs(io, random_inputs(io, batch, seed=draw, draw=draw))
            if shapes_only:
                inputs = [tensor.to("meta") for tensor in inputs]
            failure = _run(model, inputs)
            if shapes_only and isinstance(failure, NotImplementedError):
                failure = None  # an op with no meta kernel: its shapes cannot be followed
            if failure is not None and quick:  # confirm it on the model load_model() gives
                model, quick = _load_model(module, weights, target, advice), False
                failure = _run(model, inputs)
            if failure is not None:
                shapes = ", ".join(str(list(t.shape)) for t in inputs)
                where = "" if merged else _culprit(failure.__traceback__, module, model,
                                                   generated, graph)
                raise GeneratedCodeError(
                    f"{target}: {where or 'the model'} fails on sample inputs of shape {shapes} "
                    f"({_exception(failure)}); nothing was written; {advice}")
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop(module.__name__, None)


def _run(model, inputs) -> Exception | None:
    import torch

    try:
        with torch.no_grad():
            model(*inputs)
    except RuntimeError as exc:
        # an integer division by a drawn 0 (masks are drawn with zeros): TF refuses it too
        return None if str(exc) == "ZeroDivisionError" else exc
    except Exception as exc:  # noqa: BLE001 - the generated code's own failure
        return exc
    return None


def _quick_model(module, weights: Path):
    """build_model() on the meta device, the staged weights assigned; None if that does not
    give a complete model (a tensor left on the meta device, a key that does not load)."""
    import numpy as np
    import torch

    try:
        dtypes = _stored_dtypes(weights)
        with torch.device("meta"):
            model = module.build_model()
        state = {key: to_torch(np.load(weights / f"{key}.npy", allow_pickle=False), dtypes.get(key))
                 for key in model.state_dict()}
        model.load_state_dict(state, strict=True, assign=True)  # each in its stored dtype
    except Exception:  # noqa: BLE001 - load_model() will say what is wrong
        return None
    tensors = [*model.parameters(), *model.buffers()]
    return None if any(tensor.is_meta for tensor in tensors) else model.eval()


def _weight_bytes(weights: Path) -> int:
    return sum(path.stat().st_size for path in weights.glob("*.npy"))


def _meta_model(module, weights: Path):
    """build_model() on the meta device in the weights' dtype (shapes and dtypes, no values)."""
    import torch

    with torch.device("meta"):
        model = module.build_model()
    dtypes = _stored_dtypes(weights)
    if "bfloat16" in dtypes.values():  # as load_model() gives it: float32 constants stay so
        state = {key: value.to(torch.bfloat16) if dtypes.get(key) == "bfloat16" else value
                 for key, value in model.state_dict().items()}
        model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _stored_dtypes(weights: Path) -> dict[str, str]:
    """state_dict key -> the dtype weights/index.json names where the .npy holds its bits."""
    index = json.loads((weights / "index.json").read_text())
    return {key: entry["dtype"] for key, entry in index.items() if "dtype" in entry}


def _load_model(module, weights: Path, target: Path, advice: str):
    try:
        return module.load_model(weights)
    except Exception as exc:  # noqa: BLE001 - the generated code's own failure
        raise GeneratedCodeError(f"{target}: load_model() fails ({_exception(exc)}); nothing "
                                 f"was written; {advice}") from None


def _advice(merged: bool, templates: Path | None) -> str:
    if merged:
        return "your edits of model.py were merged into it: fix them, or pass --force"
    if templates is not None:
        return f"check your templates in {templates} (--templates)"
    return "this is a codegen bug: please report it with the IR folder"


def _exception(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _import(path: Path):
    name = f"codegen_build_check_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


# -- which IR node failed -----------------------------------------------------------------------
def _culprit(tb, module, model, generated, graph) -> str:
    """"the code of node 'NAME' (op, TF 'tf name')" for the traceback `tb`; '' if not found."""
    node = _failing_node(tb, module, model, generated)
    if node is None or node not in graph.nodes:
        return ""
    tf_name = graph.nodes[node].tf_name
    tf_text = f", TF {tf_name!r}" if tf_name and tf_name != node else ""
    return f"the code of node {node!r} ({graph.nodes[node].op}{tf_text})"


def _failing_node(tb, module, model, generated) -> str | None:
    paths = {id(m): name for name, m in model.named_modules()}
    frames = []  # (frame, last instruction) from the outermost call to the innermost
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lasti))
        tb = tb.tb_next
    owners = [paths.get(id(frame.f_locals.get("self"))) for frame, _ in frames]
    deepest_layer = next((generated.layers[path] for path in reversed(owners)
                          if path in generated.layers), None)
    source_file = str(Path(module.__file__))
    for (frame, lasti), path in reversed(list(zip(frames, owners))):
        if path not in generated.plans or frame.f_code.co_filename != source_file:
            continue
        if frame.f_code.co_name != "forward":
            continue
        plan = generated.plans[path]
        index = _statement(module.__file__, type(frame.f_locals["self"]).__name__,
                           _position(frame.f_code, lasti), generated.statements)
        if index is None:
            break
        stmt = plan.stmts[index]
        if stmt.node is not None and stmt.kind in ("layer", "expr"):
            return stmt.node.name
        return deepest_layer  # inside an nn.Sequential / a loop over an nn.ModuleList
    return deepest_layer


def _position(code, lasti: int) -> tuple[int, int, int, int] | None:
    """(line, column, end line, end column) of the instruction at `lasti`."""
    positions = list(code.co_positions())  # (line, end line, column, end column) each
    if 0 <= lasti // 2 < len(positions) and None not in positions[lasti // 2]:
        line, end_line, column, end_column = positions[lasti // 2]
        return line, column, end_line, end_column
    return None


def _statement(path: str, class_name: str, position, statements: dict) -> int | None:
    """The index (in the class's plan) of the IR statement whose code is at `position` of
    `class_name`'s forward in model.py."""
    groups = statements.get(class_name)
    if position is None or groups is None:
        return None
    tree = ast.parse(Path(path).read_text())
    forward = next((item for node in tree.body if isinstance(node, ast.ClassDef)
                    and node.name == class_name for item in node.body
                    if isinstance(item, ast.FunctionDef) and item.name == "forward"), None)
    if forward is None or len(forward.body) != len(groups):
        return None  # (not the text we generated)
    line, column, end_line, end_column = position
    for statement, group in zip(forward.body, groups):
        if statement.lineno <= line <= statement.end_lineno and group:
            return _innermost(statement, group, (line, column), (end_line, end_column))
    return None


def _innermost(statement: ast.stmt, group: list, start: tuple, end: tuple) -> int:
    """Of the IR statements written in one Python statement (one with those inlined into it),
    the one whose expression is the innermost that holds the failing span."""
    dumps = {}
    for index, text in group:
        try:
            dumps.setdefault(ast.dump(ast.parse(text, mode="eval").body), index)
        except (SyntaxError, TypeError, ValueError):
            continue
    enclosing = [node for node in ast.walk(statement) if isinstance(node, ast.expr)
                 and (node.lineno, node.col_offset) <= start
                 and (node.end_lineno, node.end_col_offset) >= end]
    enclosing.sort(key=lambda node: (node.lineno, node.col_offset,
                                     -node.end_lineno, -node.end_col_offset), reverse=True)
    for node in enclosing:  # innermost first
        index = dumps.get(ast.dump(node))
        if index is not None:
            return index
    return group[0][0]
