"""Classes that differ only in optional parts become one class with a flag argument.

Two module classes of one depth are one class when the statements of the one are the
statements of the other less some runs of them, each run an *optional part*: it has one
value read after it (its result) and, where it is left out, its readers read one of its
own inputs instead (a squeeze-excite gate `x * gate(x)` or a residual `y + x` left out:
readers read `x` or `y`). That is how a hand-written block says it: `InvertedResidual(...,
use_se=False)` and `if self.use_se:` in `forward`. The statements kept must be the same
(kind, attribute, template and wiring; which activation is an argument, modules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.backends.pytorch.naming import identifier

KIND_WORDS = {"conv", "bn", "fc", "dense", "linear", "norm"}  # not in a flag's name


@dataclass
class OptionalPart:
    indexes: list[int]  # statements of the class's first instance, in order
    result: str  # ref (of the first instance) read after the part
    passthrough: str  # ref the readers read instead where the part is left out
    flag: str = ""  # the constructor argument's name (set with the class's parameters)
    key: tuple = ()  # its value's path in each instance's values
    shared: bool = False  # the passthrough is also read after the part


def stmt_key(planner, stmt) -> tuple:
    body, _ = planner.stmt_sig(stmt)
    return (stmt.kind, stmt.attr if stmt.kind != "expr" else "", body, stmt.reuse)


def wiring(plan) -> tuple[dict[str, tuple], list[list[tuple]]]:
    """Each statement's inputs as ("in", i) or ("stmt", index, position)."""
    local = {ref: ("in", i) for i, ref in enumerate(plan.scope.inputs)}
    wires = []
    for index, stmt in enumerate(plan.stmts):
        wires.append([local.get(ref, ("ref", ref)) for ref in stmt.inputs])
        for position, ref in enumerate(stmt.outputs):
            local[ref] = ("stmt", index, position)
    return local, wires


def optional_parts(planner, big, small) -> list[OptionalPart] | None:
    """The runs of `big`'s statements that `small` leaves out, if `small` is `big` less
    optional parts (see the module docstring); else None."""
    if len(big.scope.inputs) != len(small.scope.inputs) or len(big.scope.outputs) != len(small.scope.outputs):
        return None
    if any(stmt.kind == "stack" for stmt in big.stmts):
        return None
    keys_big = [stmt_key(planner, s) for s in big.stmts]
    keys_small = [stmt_key(planner, s) for s in small.stmts]
    match, j = [], 0  # small index -> big index
    for key in keys_small:
        while j < len(keys_big) and keys_big[j] != key:
            j += 1
        if j == len(keys_big):
            return None
        match.append(j)
        j += 1
    kept = set(match)
    missing = [i for i in range(len(big.stmts)) if i not in kept]  # (none: the same
    # statements, other local names or activations)
    runs: list[list[int]] = []
    for index in missing:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    local_big, wires_big = wiring(big)
    local_small, wires_small = wiring(small)
    to_big = {("stmt", k, p): ("stmt", match[k], p) for k, s in enumerate(small.stmts)
              for p in range(len(s.outputs))}
    run_of = {index: n for n, run in enumerate(runs) for index in run}
    parts: list[OptionalPart | None] = [None] * len(runs)
    # every kept statement (and the outputs) reads what it reads in `small`, where a part's
    # result is read as its passthrough
    readers = [(wires_big[match[k]], wires_small[k]) for k in range(len(small.stmts))]
    readers.append(([local_big[ref] for ref in big.scope.outputs],
                    [local_small[ref] for ref in small.scope.outputs]))
    for wires_b, wires_s in readers:
        if len(wires_b) != len(wires_s):
            return None
        for wire_b, wire_s in zip(wires_b, wires_s):
            expected = to_big.get(wire_s, wire_s)
            if wire_b == expected:
                continue
            if wire_b[0] != "stmt" or wire_b[1] not in run_of:
                return None
            n = run_of[wire_b[1]]
            result = big.stmts[wire_b[1]].outputs[wire_b[2]]
            passthrough = _ref(big, expected)
            if passthrough is None or parts[n] is not None and (
                    parts[n].result != result or parts[n].passthrough != passthrough):
                return None
            parts[n] = OptionalPart(runs[n], result, passthrough)
    for n, run in enumerate(runs):
        part = parts[n]
        if part is None or not _well_formed(big, run, part):
            return None
    return parts


def _ref(plan, wire: tuple) -> str | None:
    if wire[0] == "in":
        return plan.scope.inputs[wire[1]]
    if wire[0] == "stmt":
        return plan.stmts[wire[1]].outputs[wire[2]]
    return None


def _well_formed(plan, run: list[int], part: OptionalPart) -> bool:
    """The part reads its passthrough, makes one value read after it and holds only layers,
    expressions and modules."""
    inside = {ref for index in run for ref in plan.stmts[index].outputs}
    if part.passthrough in inside:
        return False
    if any(plan.stmts[index].kind not in ("layer", "expr", "module", "seq")
           or plan.stmts[index].reuse for index in run):
        return False
    if not any(part.passthrough in plan.stmts[index].inputs for index in run):
        return False
    after = [stmt for stmt in plan.stmts[run[-1] + 1:]]
    read_after = {ref for stmt in after for ref in stmt.inputs} | set(plan.scope.outputs)
    # read elsewhere (before the part too: an expression written inside a later line may
    # read it), the result gets a name of its own instead of the passthrough's
    outside = {ref for index, stmt in enumerate(plan.stmts) if index not in run
               for ref in stmt.inputs} | set(plan.scope.outputs)
    part.shared = part.passthrough in outside
    return (read_after & inside) == {part.result}


def flag_name(plan, part: OptionalPart) -> str:
    """`use_squeeze_excite` from the part's layers' common name; `use_residual` for an add."""
    stmts = [plan.stmts[index] for index in part.indexes]
    named = [stmt.attr.split("_") for stmt in stmts if stmt.kind != "expr"]
    common = []
    for column in zip(*named):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    while len(common) > 1 and (common[-1].isdigit() or common[-1] in KIND_WORDS):
        common.pop()
    if common:
        return identifier("use_" + "_".join(common))
    if len(stmts) == 1 and stmts[0].kind == "expr" and stmts[0].node.op == "add":
        return "use_residual"
    return identifier("use_" + stmts[0].attr)
