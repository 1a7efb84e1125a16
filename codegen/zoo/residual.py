"""Find the residual branches of a TF graph, for `calibrate.py`.

A residual addition is an Add of two activations (both computed from the network's
input) that meet again after one side went through more convolutions than the other:
the side with more is the residual branch, the other the shortcut (identity, pooled or
projected). The branch's last affine layer is what scales its contribution to the sum:
the gamma and beta of a closing batch norm, or the weights and biases of a closing
convolution. Everything is found from the graph's wiring, nothing from names.
"""

from __future__ import annotations

from typing import Any

_ADD_OPS = {"Add", "AddV2"}
_CONV_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul"}
_VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}
_READ_OPS = {"Identity", "ReadVariableOp"}


def residual_branch_ends(inputs: Any, output: Any) -> list[list[str]]:
    """For each residual addition between `inputs` and `output` (in graph order), the
    names of the variables of its branch's last affine layer. Additions whose branch
    ends in something else (an activation, an unfused batch norm) are left out.
    """
    ops = _ops_between(inputs.op, output.op)
    ends = []
    for op in ops.values():
        if op.type not in _ADD_OPS or len(op.inputs) != 2:
            continue
        left, right = (tensor.op for tensor in op.inputs)
        if left.name not in ops or right.name not in ops:
            continue  # a bias or constant, not a second activation
        left_convs, right_convs = _private_convs(left, right, ops), _private_convs(right, left, ops)
        if left_convs == right_convs:
            continue
        branch = op.inputs[0] if left_convs > right_convs else op.inputs[1]
        variables = last_affine_variables(branch)
        if variables:
            ends.append(variables)
    return ends


def last_affine_variables(tensor: Any) -> list[str]:
    """Variables of the affine layer that produces `tensor`: [gamma, beta] of a fused
    batch norm, [weights(, biases)] of a convolution; [] for anything else."""
    op, names = tensor.op, []
    while op.type in _READ_OPS and op.inputs:
        op = op.inputs[0].op
    if op.type.startswith("FusedBatchNorm"):
        names = [variable_name(op.inputs[1]), variable_name(op.inputs[2])]
    elif op.type == "BiasAdd":
        inner = last_affine_variables(op.inputs[0])
        names = [*inner, variable_name(op.inputs[1])] if inner else [None]
    elif op.type in _CONV_OPS:
        names = [variable_name(op.inputs[1])]
    return names if names and None not in names else []


def _ops_between(source: Any, sink: Any) -> dict[str, Any]:
    """Ops that depend on `source` and that `sink` depends on, by name, in graph order."""
    upstream = _ancestors(sink)
    reached, stack = set(), [source]
    while stack:
        op = stack.pop()
        if op.name in reached or op.name not in upstream:
            continue
        reached.add(op.name)
        stack.extend(consumer for out in op.outputs for consumer in out.consumers())
    return {op.name: op for op in sink.graph.get_operations() if op.name in reached}


def _ancestors(op: Any) -> set[str]:
    """Names of `op` and of every op it depends on."""
    seen: set[str] = set()
    stack = [op]
    while stack:
        current = stack.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        stack.extend(tensor.op for tensor in current.inputs)
        stack.extend(current.control_inputs)
    return seen


def _private_convs(op: Any, other: Any, between: dict[str, Any]) -> int:
    """Convolutions that `op` depends on and `other` does not (on the input's path)."""
    shared = _ancestors(other)
    return sum(1 for name in _ancestors(op)
               if name not in shared and name in between and between[name].type in _CONV_OPS)


def variable_name(tensor: Any) -> str | None:
    """The name of the variable that `tensor` reads, or None."""
    op = tensor.op
    while op.type in _READ_OPS and op.inputs:
        op = op.inputs[0].op
    return op.name if op.type in _VARIABLE_OPS else None
