"""Functional conditionals (If / StatelessIf, from `tf.cond` on a tensor in a tf.function):
`torch.where(pred, then, else)` for each output, both branches converted like the rest of
the graph (their bodies were added beside the If when loading: conditionals.py). A constant
predicate picks its branch at conversion. A conditional whose branches could fail or have
side effects when run unconditionally is refused with what they hold."""

from __future__ import annotations

from codegen.frontends.tensorflow import conditionals
from codegen.frontends.tensorflow.context import tensor_info
from codegen.frontends.tensorflow.handlers import handler


def _reads(op) -> list:
    branches = conditionals.branch_outputs(op)
    return [op.inputs[0]] + [t for pair in branches or () for t in pair]


@handler("If", "StatelessIf", ir="where", reads=_reads)
def conditional(ctx) -> None:
    branches = conditionals.branch_outputs(ctx.op)
    if branches is None:
        ctx.fail(conditionals.refusal(ctx.op))
    predicate = ctx.op.inputs[0]
    if predicate.dtype.name != "bool" or predicate.shape.rank != 0:
        ctx.fail(f"the predicate is {predicate.dtype.name} of shape {predicate.shape} (a "
                 "conditional is converted with a boolean scalar predicate, as tf.cond makes)")
    constant = ctx.kind_of(predicate) == "constant"
    for index, pair in enumerate(branches):
        for tensor in pair:
            if tensor.shape.rank is None or tensor.shape.as_list() != pair[0].shape.as_list() \
                    or tensor.dtype != pair[0].dtype:
                ctx.fail(f"output {index} of its branches has shapes {pair[0].shape} and "
                         f"{pair[1].shape} ({pair[0].dtype.name}, {pair[1].dtype.name}); "
                         "torch.where needs both the same")
        refs = [_ref(ctx, tensor) for tensor in pair]
        if constant:  # a fixed branch: no choice left at run time
            ctx.alias(ctx.op.outputs[index], refs[0 if ctx.value_of(predicate) else 1])
            continue
        ref = ctx.emit("where", [ctx.input(0), *refs], suffix=f"output_{index}",
                       outputs=[tensor_info(pair[0])])
        ctx.alias(ctx.op.outputs[index], ref)


def _ref(ctx, tensor) -> str:
    """A branch result (the Identity conditionals.py put behind it): its IR ref; a
    constant or a weight becomes a node of its own."""
    if ctx.kind_of(tensor) in ("constant", "weight"):
        return ctx.of(tensor.op).input(0)
    return ctx.ref_of(tensor)
