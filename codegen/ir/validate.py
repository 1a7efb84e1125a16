"""Load an IR folder and check it: JSON Schema first, then the graph's meaning.

All problems are collected and reported together in one `InvalidIRError`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import networkx as nx

from codegen.dtypes import stored_dtype
from codegen.errors import InvalidIRError
from codegen.ir.graph import Graph, split_ref
from codegen.ir.sizes import size_problems
from codegen.ir.weights import read_npy_header
from codegen.resources import graph_schema, op_catalogue

MAX_REPORTED = 20
REDO = "write the IR folder again with 'codegen to-ir'"


def load_ir(ir_dir: Path, *, check_weights: bool = True) -> Graph:
    """Read `ir_dir/graph.json`, validate it and return the graph."""
    path = Path(ir_dir) / "graph.json"
    if not path.is_file():
        raise InvalidIRError(f"{path}: not found; write an IR folder with 'codegen to-ir'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidIRError(f"{path}: not valid JSON ({exc}); {REDO}") from None
    _raise_if(path, _schema_problems(data) or _duplicate_names(data))
    graph = Graph.from_json(data)
    problems = semantic_problems(graph)
    if check_weights and not problems:
        problems = weight_file_problems(graph, Path(ir_dir))
    _raise_if(path, problems)
    return graph


def _raise_if(path: Path, problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise InvalidIRError(
            f"{path}: {len(problems)} problem(s): {shown[0]}{more}; {REDO}", details=shown
        )


def _duplicate_names(data: dict) -> list[str]:
    seen: set[str] = set()
    problems = []
    for node in data["nodes"]:
        if node["name"] in seen:
            problems.append(f"node name {node['name']!r} is used twice")
        seen.add(node["name"])
    return problems


@cache
def _validator() -> jsonschema.Draft202012Validator:
    """The schema with its local `$defs` references inlined: the same checks and messages,
    about 40% faster on a 900-node graph than resolving each `$ref` on every node."""
    schema = graph_schema()
    return jsonschema.Draft202012Validator(_inline(schema, schema.get("$defs", {}), 0))


def _inline(node: object, defs: dict, depth: int) -> object:
    if depth > 32:
        raise ValueError("graph.schema.json: $defs refer to each other recursively")
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if len(node) == 1 and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs, depth + 1)
        return {key: _inline(value, defs, depth) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(value, defs, depth) for value in node]
    return node


def _schema_problems(data: object) -> list[str]:
    validator = _validator()
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message[:200]}")
    return problems


def semantic_problems(graph: Graph) -> list[str]:
    """Unknown ops, bad attrs, dangling inputs, missing weights, cycles."""
    catalogue = op_catalogue()
    defs = {"$defs": catalogue["$defs"]}
    known = {graph_input.name: [graph_input] for graph_input in graph.inputs}
    known.update({node.name: node.outputs for node in graph.nodes.values()})
    problems: list[str] = []
    input_names = [graph_input.name for graph_input in graph.inputs]
    for name in sorted({n for n in input_names if input_names.count(n) > 1 or n in graph.nodes}):
        problems.append(f"the name {name!r} is given to an input and to another input or node")
    for node in graph.nodes.values():
        spec = catalogue.get(node.op) if not node.op.startswith("$") else None
        if spec is None:
            problems.append(f"node {node.name!r}: unknown op {node.op!r}")
            continue
        problems += [f"node {node.name!r}: {p}" for p in _node_problems(node, spec, defs, known)]
        for role, weight in node.weights.items():
            if weight not in graph.weights:
                problems.append(f"node {node.name!r}: weight {weight!r} ({role}) is not listed")
    for name, entry in graph.weights.items():
        if entry.transform_problem():
            problems.append(f"weight {name!r}: {entry.transform_problem()}")
    for output in graph.outputs:
        if not _ref_exists(output.source, known):
            problems.append(f"output {output.name!r}: source {output.source!r} does not exist")
    if not problems:
        problems += size_problems(graph)
    if not problems:
        try:
            cycle = nx.find_cycle(graph.to_networkx())
            problems.append(f"the graph has a cycle through {cycle[0][0]!r}")
        except nx.NetworkXNoCycle:
            pass
    return problems


def _node_problems(node, spec, defs, known) -> list[str]:
    problems = []
    expected = spec["inputs"]
    if (expected >= 0 and len(node.inputs) != expected) or (expected < 0 and not node.inputs):
        problems.append(f"op {node.op} takes {expected} input(s), got {len(node.inputs)}")
    for ref in node.inputs:
        if not _ref_exists(ref, known):
            problems.append(f"input {ref!r} does not exist")
    roles = spec["weights"]
    for role in roles["required"]:
        if role not in node.weights:
            problems.append(f"op {node.op} needs weight {role!r}")
    for role in node.weights:
        if role not in roles["required"] + roles["optional"]:
            problems.append(f"op {node.op} has no weight role {role!r}")
    validator = jsonschema.Draft202012Validator({**spec["attrs"], **defs})
    for error in validator.iter_errors(node.attrs):
        problems.append(f"attrs: {error.message[:200]}")
    return problems


def _ref_exists(ref: str, known: dict) -> bool:
    try:
        name, index = split_ref(ref)
    except ValueError:
        return False
    return name in known and 0 <= index < len(known[name])


def weight_file_problems(graph: Graph, ir_dir: Path) -> list[str]:
    """Each weight file exists and its .npy header matches the table (no data is read)."""
    problems = []
    for name, entry in graph.weights.items():
        path = ir_dir / entry.file
        try:
            with open(path, "rb") as handle:
                _, shape, _, dtype = read_npy_header(handle)
        except FileNotFoundError:
            problems.append(f"weight {name!r}: file {entry.file} is missing")
            continue
        except Exception as exc:  # noqa: BLE001 - a damaged header raises many kinds
            problems.append(f"weight {name!r}: {entry.file} is not a .npy array "
                            f"({type(exc).__name__}: {str(exc)[:100]})")
            continue
        if dtype.hasobject:
            problems.append(f"weight {name!r}: {entry.file} holds Python objects (refused)")
        elif list(shape) != entry.shape or str(dtype) != stored_dtype(entry.dtype):
            problems.append(
                f"weight {name!r}: {entry.file} holds {dtype}{list(shape)}, "
                f"graph.json says {entry.dtype}{entry.shape}"
            )
    return problems
