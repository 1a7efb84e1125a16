"""TimeDistributed(layer): the layer applied to batch x time folded together, as a person
writes it: `layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])`. Recognised by structure in
the three forms Keras writes it:
- reshape (tf_keras): reshape(x, [-1, *inner]) -> layer -> reshape(y, [-1 | N, T, *out]);
- stack (Keras 3, T known): transpose(x, [1, 0, ...]) -> x_t[i] -> layer, for every i ->
  stack -> transpose back;
- pfor (Keras 3, T unknown, vectorized_map): transpose -> pfor-vectorised ops (and a
  fallback while loop that gathers every step) -> transpose back; the graph keeps the
  layer's one-step body too, on x_t[index] for pfor's loop index (a PlaceholderWithDefault).
In the last two forms the output transpose reads the layer's one-step output (`reads`), so
the other steps, the stack and the pfor ops are never converted."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from codegen.frontends.tensorflow.rewrites import rewrite

LIMIT = 20000  # ops a walk may visit: a TimeDistributed body is far smaller
_FOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # graph -> {op: result}


def _memo(function):
    """`function(op)` computed once per op, kept only while the op's graph lives."""

    def memoised(op):
        found = _FOUND.setdefault(op.graph, {})
        key = (function.__name__, op)
        if key not in found:
            found[key] = function(op)
        return found[key]

    return memoised
SOURCES = ("Placeholder", "PlaceholderWithDefault")


@dataclass(frozen=True)
class Distributed:
    source: object  # the batch-first tensor [N, T, ...]
    step_input: object  # the op that stands for x[:, t] (a StridedSlice of the time-major x)
    step_output: object  # the layer's output for that step [N, ...]
    body: frozenset = frozenset()  # the names of the ops from step_input to step_output


def _value(tensor):
    from tensorflow.python.framework.tensor_util import constant_value

    try:
        return constant_value(tensor)
    except Exception:  # noqa: BLE001 - not a constant
        return None


def _swaps(op) -> bool:
    """transpose(x, [1, 0, 2, ...]) of a tensor of rank >= 3."""
    if op.type != "Transpose":
        return False
    perm = _value(op.inputs[1])
    return perm is not None and len(perm) >= 3 and perm.tolist() == [1, 0, *range(2, len(perm))]


def _walk_back(tensors, stop) -> tuple[set, set] | None:
    """(ops visited, ops where `stop(op)` held) walking back from `tensors`, not past a
    stop, a constant, a variable or a Shape (which reads sizes, not values); None past
    LIMIT ops."""
    seen, stops, stack = set(), set(), [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if len(seen) > LIMIT:
            return None
        if stop(op):
            stops.add(op)
        elif op.type not in ("Const", "VarHandleOp", "VariableV2", "Shape"):
            stack.extend(t.op for t in op.inputs)
    return seen, stops


def _step_slice(op, time_major) -> bool:
    """x_t[i]: one step of the time-major tensor (axis 0 dropped)."""
    return (op.type == "StridedSlice" and op.inputs[0].op is time_major
            and op.get_attr("shrink_axis_mask") == 1 and op.inputs[1].shape.as_list() == [1]
            and not any(op.get_attr(m) for m in ("ellipsis_mask", "new_axis_mask")))


def _per_step(output, step_input, time_major) -> frozenset | None:
    """The names of the ops of the layer's one-step body, if its output reads the
    time-major tensor only through its step (nothing of the other steps, no model input)."""
    walk = _walk_back([output], lambda op: op is step_input)
    if walk is None or step_input not in walk[1]:
        return None
    if any(op is time_major or op.type in SOURCES or _swaps(op) or
           (op is not step_input and _step_slice(op, time_major)) for op in walk[0]):
        return None
    return frozenset(op.name for op in walk[0])


@_memo
def distributed(out) -> Distributed | None:
    """The TimeDistributed whose output transpose is `out` (stack or pfor form)."""
    if not _swaps(out):
        return None
    walk = _walk_back([out.inputs[0]], _swaps)
    if walk is None or len(walk[1]) != 1:
        return None
    time_major = next(iter(walk[1]))
    source, rank = time_major.inputs[0], len(_value(out.inputs[1]))
    steps = [op for tensor in time_major.outputs for op in tensor.consumers()
             if _step_slice(op, time_major)]
    pack = out.inputs[0].op
    if pack.type == "Pack":  # T known: one call per step, stacked
        length = source.shape.as_list()[1] if source.shape.rank is not None else None
        if pack.get_attr("axis") != 0 or len(pack.inputs) != length or len(steps) != length:
            return None
        by_index = {}
        for step in steps:
            begin = _value(step.inputs[1])
            by_index[None if begin is None else int(begin.reshape(-1)[0])] = step
        if sorted(by_index, key=str) != sorted(range(length), key=str):
            return None
        if not all(_per_step(pack.inputs[i], by_index[i], time_major) for i in range(length)):
            return None
        return Distributed(source, by_index[0], pack.inputs[0], frozenset())
    # T unknown: pfor. The one-step body on x_t[pfor's loop index] ends in one tensor that
    # nothing reads, of the output's rank less one
    indexed = [step for step in steps if _value(step.inputs[1]) is None
               and _loop_index(step.inputs[1])]
    if len(indexed) != 1:
        return None
    ends = [t for t in _dead_ends(indexed[0]) if t.shape.rank == rank - 1
            and t.dtype == out.outputs[0].dtype and _fits(t, out.outputs[0])]
    body = _per_step(ends[0], indexed[0], time_major) if len(ends) == 1 else None
    return None if body is None else Distributed(source, indexed[0], ends[0], body)


def _fits(step, out) -> bool:
    """A step's sizes agree with the output's [N, T, ...] where both are known."""
    if out.shape.rank is None:
        return True
    return all(a is None or b is None or a == b
               for a, b in zip(step.shape.as_list()[1:], out.shape.as_list()[2:]))


def _loop_index(begin) -> bool:
    """The step index is computed from pfor's loop index (a PlaceholderWithDefault)."""
    walk = _walk_back([begin], lambda op: op.type == "PlaceholderWithDefault")
    return walk is not None and len(walk[1]) == 1


def _dead_ends(step) -> list:
    """The tensors downstream of `step` that nothing reads (the unused one-step body)."""
    seen, stack, ends = set(), [step], []
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if len(seen) > LIMIT:
            return []
        for tensor in op.outputs:
            consumers = tensor.consumers()
            if not consumers and not any(t.consumers() for t in op.outputs):
                ends.append(tensor)
            stack.extend(consumers)
    return ends


@_memo
def _outputs_of(time_major) -> tuple:
    """The TimeDistributed output transposes fed by the time-major tensor."""
    seen, stack, found = set(), [time_major], []
    while stack:
        op = stack.pop()
        if op in seen or len(seen) > LIMIT:
            continue
        seen.add(op)
        if op is not time_major and _swaps(op):
            if distributed(op) is not None:
                found.append(op)
            continue
        stack.extend(c for tensor in op.outputs for c in tensor.consumers())
    return tuple(found)


def _step_of(op) -> Distributed | None:
    if op.type != "StridedSlice" or not _swaps(op.inputs[0].op):
        return None
    for out in _outputs_of(op.inputs[0].op):
        if distributed(out).step_input is op:
            return distributed(out)
    return None


def _output_reads(op):
    found = distributed(op)
    return None if found is None else [found.source, found.step_output]


def _step_reads(op):
    found = _step_of(op)
    return None if found is None else [found.source]


@rewrite("Transpose", reads=_output_reads)
def match_output(ctx) -> bool:
    """The layer's output for the folded steps [N * T, ...] -> [N, T, ...]."""
    found = distributed(ctx.op)
    if found is None:
        return False
    ctx.emit("unflatten_as", [ctx.ref_of(found.step_output), ctx.ref_of(found.source)],
             attrs={"axis": 0, "count": 2})
    # vectorized_map scopes the one-step body one level deeper than the layer: named as
    # the layer's own ops are when the length is known
    levels = {name[len(ctx.scope) + 1:].partition("/")[0] for name in found.body
              if name.startswith(ctx.scope + "/")}
    if found.body and len(levels) == 1 and all(
            name.startswith(f"{ctx.scope}/{next(iter(levels))}/") for name in found.body):
        ctx.rescope(set(found.body), f"{ctx.scope}/{next(iter(levels))}", ctx.scope)
    return True


@rewrite("StridedSlice", reads=_step_reads)
def match_step(ctx) -> bool:
    """One step x_t[i] of the layer's input stands for all of them: x.flatten(0, 1)."""
    found = _step_of(ctx.op)
    if found is None:
        return False
    ctx.emit("flatten", [ctx.ref_of(found.source)], attrs={"axis": 0, "end_axis": 1})
    return True
