"""Sizes known only at run time held as Python values (DESIGN.md, "Sizes known only at run
time are values"): `seq_len = x.shape[1]` is an int, `x.shape` a tuple of ints, never a
tensor. `TensorInfo.size` marks such a value; the op catalogue's "sizes" entry says which
ops make one ("out"), pass one on ("through": when every input is a size or a number) or
read one and give a tensor ("in"). The frontend (Context.emit), the validator and the
renderer all ask this module."""

from __future__ import annotations

from codegen.resources import op_catalogue


def sizes_role(op: str) -> str | None:
    """"out", "through", "in" or None (the op reads tensors only)."""
    spec = op_catalogue().get(op)
    return spec.get("sizes") if spec is not None else None


def reads_sizes(op: str) -> bool:
    return sizes_role(op) is not None


def reads_numbers(op: str) -> bool:
    """Whether `op` with a tensor output may read a size as it is, a Python number (an
    operator, `x * seq_len`; torch.arange(seq_len)); else the size is made a tensor."""
    spec = op_catalogue().get(op) or {}
    return spec.get("sizes") == "in" or (spec.get("sizes") == "through" and "operator" in spec)


def gives_size(op: str, inputs: list[tuple[bool, bool]]) -> bool:
    """Whether `op`'s output is a size, given for each input (is a size, is a number)."""
    role = sizes_role(op)
    if role == "out":
        return True
    if role != "through":
        return False
    return any(size for size, _ in inputs) and all(size or number for size, number in inputs)


def size_problems(graph) -> list[str]:
    """Sizes read by ops that take tensors only, and size-making ops whose output is not
    marked a size (both would render code that does not run)."""
    problems = []
    for node in graph.nodes.values():
        role = sizes_role(node.op)
        for ref in node.inputs:
            try:
                size = graph.tensor(ref).size
            except KeyError:
                continue  # (a dangling input: reported on its own)
            if size and role is None:
                problems.append(f"node {node.name!r}: op {node.op} reads a tensor, but input "
                                f"{ref!r} is a size (a Python value)")
        if role == "out" and not all(info.size for info in node.outputs):
            problems.append(f"node {node.name!r}: op {node.op} gives a size; its output must "
                            "be marked \"size\"")
    return problems
