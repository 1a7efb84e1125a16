"""TimeDistributed(layer) as tf_keras writes it: the steps folded into the batch by a
reshape and unfolded by another,
    y = layer(reshape(x, [-1, *x.shape[2:]]));  reshape(y, [-1 | N, T, *y.shape[1:]])
with T read from x at run time where it is unknown. The fold is `x.flatten(0, 1)`, the
unfold `y.unflatten(0, x.shape[:2])`, so the model runs at every length."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.dynamic import symbolic_dims
from codegen.frontends.tensorflow.rewrites import rewrite

LIMIT = 5000  # ops a walk may visit


def _through_identity(tensor):
    while tensor.op.type in ("Identity", "StopGradient"):
        tensor = tensor.op.inputs[0]
    return tensor


def _sizes(tensor) -> list | None:
    return tensor.shape.as_list() if tensor.shape.rank is not None else None


def _is_size(dim, tensor, axis: int) -> bool:
    """A size of a shape vector (symbolic_dims) is `tensor`'s size on `axis`."""
    if isinstance(dim, tuple) and len(dim) == 2 and not isinstance(dim[0], str):
        return _through_identity(dim[0]) is _through_identity(tensor) and dim[1] == axis
    size = tensor.shape.as_list()[axis]
    return isinstance(dim, int) and size is not None and dim == size


def _folds(ctx, op) -> bool:
    """reshape(x, [-1, *x.shape[2:]]): the first two axes of x merged, the others kept
    (read from x where unknown)."""
    if op.type != "Reshape":
        return False
    x, y = _sizes(op.inputs[0]), _sizes(op.outputs[0])
    if x is None or y is None or len(x) < 3 or len(y) != len(x) - 1:
        return False
    dims = symbolic_dims(ctx, op.inputs[1])
    return (dims is not None and len(dims) == len(y) and dims[0] == -1
            and all(_is_size(dim, op.inputs[0], axis + 2) for axis, dim in enumerate(dims[1:])))


def _folded_source(ctx, tensor):
    """The x of the one fold behind `tensor` (walking back through the layer), or None."""
    seen, stack, sources = set(), [tensor.op], set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if len(seen) > LIMIT:
            return None
        if _folds(ctx, op):
            sources.add(_through_identity(op.inputs[0]))
        elif op.type not in ("Const", "VarHandleOp", "VariableV2", "Shape", "Placeholder"):
            stack.extend(t.op for t in op.inputs)
    return next(iter(sources)) if len(sources) == 1 else None


def unfolded(ctx, op):
    """x, if `op` is reshape(y, [-1 | N, T, *y.shape[1:]]) of a y folded from x."""
    if op.type != "Reshape":
        return None
    y, out = _sizes(op.inputs[0]), _sizes(op.outputs[0])
    if y is None or out is None or len(y) < 2 or len(out) != len(y) + 1:
        return None
    dims = symbolic_dims(ctx, op.inputs[1])
    if dims is None or len(dims) != len(out) or not all(
            _is_size(dim, op.inputs[0], axis + 1) for axis, dim in enumerate(dims[2:])):
        return None
    x = _folded_source(ctx, op.inputs[0])
    if x is None:
        return None
    return x if (dims[0] == -1 or _is_size(dims[0], x, 0)) and _is_size(dims[1], x, 1) else None


def _feeds_unfold(ctx, op) -> bool:
    """Whether a fold's output reaches a reshape that unfolds it (the TimeDistributed),
    before any other reshape (a layer that reshapes keeps its fold a plain reshape)."""
    source = _through_identity(op.inputs[0])
    seen, stack = set(), [c for c in op.outputs[0].consumers()]
    while stack:
        consumer = stack.pop()
        if consumer in seen or len(seen) > LIMIT:
            continue
        seen.add(consumer)
        if consumer.type == "Reshape":  # the unfold, or the layer's own: not past it
            if unfolded(ctx, consumer) is source:
                return True
            continue
        stack.extend(c for t in consumer.outputs for c in t.consumers())
    return False


@rewrite("Reshape")
def match_fold(ctx) -> bool:
    """[N, T, ...] -> [N * T, ...]: x.flatten(0, 1), where it folds a TimeDistributed's
    steps (or any tensor of rank >= 4, an image sequence, which the layout pass then reads
    as the images it is)."""
    if not _folds(ctx, ctx.op):
        return False
    if ctx.op.inputs[0].shape.rank < 4 and not _feeds_unfold(ctx, ctx.op):
        return False
    ctx.emit("flatten", [ctx.input(0)], attrs={"axis": 0, "end_axis": 1})
    return True


@rewrite("Reshape")
def match_unfold(ctx) -> bool:
    """[N * T, ...] -> [N, T, ...] with N and T of the folded x: y.unflatten(0, x.shape[:2])."""
    x = unfolded(ctx, ctx.op)
    if x is None:
        return False
    ctx.emit("unflatten_as", [ctx.input(0), ctx.ref_of(x)], attrs={"axis": 0, "count": 2})
    return True
