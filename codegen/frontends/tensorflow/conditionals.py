"""Functional conditionals (If / StatelessIf: `tf.cond` in a tf.function whose predicate is a
tensor) with both branches cheap (elementwise, or a reduction), unable to fail and
side-effect free: `torch.where(pred,
then, else)`, as a PyTorch author writes such a choice (it stays traceable and exportable).

Both branches then run, which is exact only where neither can fail, draw random numbers or
act on the world: each branch may hold only the ops of BRANCH_OPS (division and powers only
of floats: an integer one may raise on the branch TF does not take). Such a conditional's
branch bodies are added to the GraphDef beside it (`<if>/then/...`, `<if>/else/...`, reading
the If's own inputs), each result behind an Identity named `then_output_<i>` /
`else_output_<i>` that the If node lists as a control input, so its handler finds them
whatever the nodes are renamed to. Any other conditional is left as it is, and its handler
refuses it with `refusal`'s reason.
"""

from __future__ import annotations

IF_OPS = ("If", "StatelessIf")
BRANCH_OPS = frozenset({
    "Const", "Identity", "IdentityN", "NoOp", "StopGradient", "Cast", "ZerosLike", "OnesLike",
    "ReadVariableOp",
    "Neg", "Abs", "Sign", "Square", "Sqrt", "Rsqrt", "Exp", "Expm1", "Log", "Log1p",
    "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh",
    "Atanh", "Sigmoid", "Relu", "Relu6", "Elu", "Selu", "Softplus", "Softsign", "LeakyRelu",
    "Erf", "Erfc", "Floor", "Ceil", "Round", "Rint", "Reciprocal", "IsNan", "IsInf", "IsFinite",
    "Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", "SquaredDifference", "BiasAdd",
    "Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual",
    "LogicalAnd", "LogicalOr", "LogicalNot", "Select", "SelectV2",
    "RealDiv", "Div", "DivNoNan", "Pow",
    "Sum", "Mean", "Max", "Min", "Prod", "All", "Any",  # (reductions: a predicate of its own)
})
FLOAT_ONLY = frozenset({"RealDiv", "Div", "DivNoNan", "Pow", "Reciprocal"})
FLOATS = (1, 2, 14, 19)  # DT_FLOAT, DT_DOUBLE, DT_BFLOAT16, DT_HALF
MAX_ROUNDS = 16  # conditionals inside inlined branches are inlined in the next round


def output_name(branch: str, index: int) -> str:
    return f"{branch}_output_{index}"


def branch_problems(function, lookup) -> list[str]:
    """What keeps a branch from running unconditionally: the op types outside BRANCH_OPS
    (integer division and powers named as such), those of nested conditionals' branches too
    (`lookup`: a function's name -> its FunctionDef, or None)."""
    problems = []
    for node in function.node_def:
        if node.op in IF_OPS:
            for branch in ("then_branch", "else_branch"):
                inner = lookup(node.attr[branch].func.name)
                problems += ["a missing function"] if inner is None else branch_problems(
                    inner, lookup)
        elif node.op not in BRANCH_OPS:
            problems.append(node.op)
        elif node.op in FLOAT_ONLY and node.attr["T"].type not in FLOATS:
            problems.append(f"integer {node.op}")
    return sorted(set(problems))


def inline_branches(graph_def) -> int:
    """One round: add the branches of each conditional not yet handled whose branches may
    both run (see the module); returns how many were added."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    functions = {f.signature.name: f for f in graph_def.library.function}
    names = {node.name for node in graph_def.node}
    added = 0
    for node in [n for n in graph_def.node if n.op in IF_OPS]:
        if any(ref.startswith("^") and ref.endswith(output_name("then", 0)) for ref in node.input):
            continue  # done in an earlier round
        branches = [functions.get(node.attr[b].func.name) for b in ("then_branch", "else_branch")]
        if None in branches or any(branch_problems(f, functions.get) for f in branches):
            continue
        prefixes = [f"{node.name}/then/", f"{node.name}/else/"]
        if any(name.startswith(tuple(prefixes)) for name in names):
            continue  # (names taken: left to the handler, which refuses it)
        arguments = [ref for ref in node.input[1:] if not ref.startswith("^")]
        for branch, function, prefix in zip(("then", "else"), branches, prefixes):
            results = _add_body(graph_def, function, prefix, arguments, function_def_to_graph_def)
            for index, (ref, dtype) in enumerate(zip(results, node.attr["Tout"].list.type)):
                identity = graph_def.node.add(name=prefix + output_name(branch, index), op="Identity")
                identity.input.append(ref)
                identity.attr["T"].type = dtype
                node.input.append("^" + identity.name)
        added += 1
    return added


def inline_all(graph_def):
    """Every conditional whose branches may both run, nested ones too (a frozen GraphDef)."""
    for _ in range(MAX_ROUNDS):
        if not inline_branches(graph_def):
            break
    return graph_def


def _add_body(graph_def, function, prefix: str, arguments: list[str], to_graph_def) -> list[str]:
    """The function's nodes added under `prefix`, its arguments read from `arguments`;
    returns the refs of its results."""
    body, flat_names = to_graph_def(function)
    by_name = dict(zip((arg.name for arg in function.signature.input_arg), arguments))

    def outer(ref: str) -> str:
        name, _, port = ref.partition(":")
        if name in by_name:
            return by_name[name]
        return prefix + name + (f":{port}" if port and port != "0" else "")

    for node in body.node:
        if node.name in by_name:
            continue  # the argument placeholders: their readers read the If's inputs
        copy = graph_def.node.add()
        copy.CopyFrom(node)
        copy.name = prefix + node.name
        del copy.input[:]
        copy.input.extend(outer(ref) for ref in node.input if not ref.startswith("^"))
    return [outer(flat_names.get(function.ret[arg.name], function.ret[arg.name]))
            for arg in function.signature.output_arg]


def branch_outputs(op) -> list[tuple] | None:
    """(then, else) result tensors of each output of a conditional whose branches were
    added beside it, else None."""
    found = {}
    for control in op.control_inputs:
        last = control.name.rpartition("/")[2]
        for branch in ("then", "else"):
            if last.startswith(f"{branch}_output_") and last[len(branch) + 8:].isdigit():
                found[(branch, int(last[len(branch) + 8:]))] = control.outputs[0]
    count = len(op.outputs)
    if len(found) != 2 * count:
        return None
    return [(found[("then", i)], found[("else", i)]) for i in range(count)]


def refusal(op) -> str:
    """Why a conditional's branches were not added (one line)."""
    library = {f.signature.name: f for f in op.graph.as_graph_def().library.function}
    lookup = library.get

    functions = [lookup(op.get_attr(branch).name) for branch in ("then_branch", "else_branch")]
    problems = sorted({problem for function in functions
                       for problem in (branch_problems(function, lookup) if function is not None
                                       else ["a missing function"])})
    return ("a conditional (tf.cond on a tensor) is converted only when both branches are "
            "elementwise ops or reductions that cannot fail (torch.where runs both); its "
            "branches hold "
            f"{', '.join(problems) or 'names already taken'}")
