"""TF graph -> IR: find what the outputs need, run one handler per op, stream weights.

Every tensor that feeds the requested outputs is one of four kinds:
- input: a Placeholder;
- weight: a variable read (VariableV2 + Identity, or VarHandleOp + ReadVariableOp);
- constant: a Const, or an op computed only from constants (folded here);
- compute: anything else, translated by the handler registered for its op type.
Unsupported ops are all collected before anything is written.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any

import numpy as np

from codegen.errors import InputError, UnsupportedOpsError
from codegen.frontends.tensorflow.context import Context, WeightSource
from codegen.frontends.tensorflow.handlers import load_handlers
from codegen.frontends.tensorflow.loader import TFModel
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node

VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}
PASSTHROUGH_OPS = {"Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics"}
STATEFUL_SOURCES = {"Placeholder", "PlaceholderWithDefault", *VARIABLE_OPS}
RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "TruncatedNormal"}


def find_ops(model: TFModel, names: list[str]) -> list[Any]:
    """TF operations for --dst-node names (':0' suffixes allowed); suggest on a typo."""
    ops = []
    all_names = [op.name for op in model.graph.get_operations()]
    for raw in names:
        name = raw.split(":")[0]
        try:
            ops.append(model.graph.get_operation_by_name(name))
        except KeyError:
            close = difflib.get_close_matches(name, all_names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InputError(f"{model.model_path}: no node named {name!r}{hint}") from None
    return ops


class Converter:
    """Converts the part of a TF graph that `outputs` need into an IR `Graph`."""

    def __init__(self, model: TFModel, *, bn_momentum: float) -> None:
        self.model = model
        self.bn_momentum = bn_momentum
        self.handlers = load_handlers()
        self.refs: dict[str, str] = {}  # TF tensor name -> IR tensor ref
        self.nodes: dict[str, Node] = {}
        self.inputs: dict[str, GraphInput] = {}
        self.weight_sources: dict[str, WeightSource] = {}  # IR weight name -> source
        self._kinds: dict[str, str] = {}

    # -- classification ------------------------------------------------------------
    def kind(self, tensor) -> str:
        """'input', 'weight', 'constant' or 'compute' (memoised, iterative)."""
        stack = [tensor.op]
        while stack:
            op = stack[-1]
            if op.name in self._kinds:
                stack.pop()
                continue
            pending = [t.op for t in op.inputs if t.op.name not in self._kinds]
            if op.type in STATEFUL_SOURCES or op.type == "Const" or not pending:
                self._kinds[op.name] = self._classify(op)
                stack.pop()
            else:
                stack.extend(pending)
        return self._kinds[tensor.op.name]

    def _classify(self, op) -> str:
        if op.type in ("Placeholder", "PlaceholderWithDefault"):
            return "input"
        if op.type in VARIABLE_OPS:
            return "variable"
        if op.type == "Const":
            return "constant"
        kinds = {self._kinds[t.op.name] for t in op.inputs}
        if op.type in PASSTHROUGH_OPS | {"ReadVariableOp"} and kinds <= {"variable", "weight"}:
            return "weight"
        if kinds == {"constant"} and op.type not in RANDOM_OPS:
            return "constant"
        return "compute"

    # -- traversal -------------------------------------------------------------------
    def compute_ops(self, outputs: list[Any]) -> list[Any]:
        """Compute ops the outputs depend on, in a topological order of the TF graph."""
        order = {op.name: i for i, op in enumerate(self.model.graph.get_operations())}
        needed: dict[str, Any] = {}
        stack = [op for op in outputs]
        while stack:
            op = stack.pop()
            if op.name in needed:
                continue
            needed[op.name] = op
            for tensor in op.inputs:
                if self.kind(tensor) == "compute":
                    stack.append(tensor.op)
                elif self.kind(tensor) == "input":
                    self._add_input(tensor.op)
        return _toposort(list(needed.values()), order)

    def _add_input(self, op) -> None:
        if op.name not in self.inputs:
            tensor = op.outputs[0]
            shape = tensor.shape.as_list() if tensor.shape.rank is not None else []
            self.inputs[op.name] = GraphInput(op.name, shape, tensor.dtype.name, tf_name=op.name)
            self.refs[tensor.name] = f"{op.name}:0"

    def convert(self, output_ops: list[Any]) -> Graph:
        unsupported: dict[str, list[str]] = {}
        for op in self.compute_ops(output_ops):
            if op.type in PASSTHROUGH_OPS and op.inputs:
                self.refs[op.outputs[0].name] = Context(self, op).input(0)
            elif op.type in self.handlers:
                self.handlers[op.type].convert(Context(self, op))
            else:
                unsupported.setdefault(op.type, []).append(op.name)
                for tensor in op.outputs:  # keep going to find every unsupported op
                    self.refs[tensor.name] = f"{op.name}:{tensor.value_index}"
        if unsupported:
            raise _unsupported_error(unsupported)
        outputs = []
        for op in output_ops:
            if op.outputs[0].name not in self.refs:
                raise InputError(f"output node {op.name!r} does not depend on any input")
            outputs.append(GraphOutput(op.name, self.refs[op.outputs[0].name], tf_name=op.name))
        self._check_weights()
        return Graph(
            inputs=list(self.inputs.values()),
            outputs=outputs,
            nodes=self.nodes,
            weights={},
            layout="NHWC",
        )

    def _check_weights(self) -> None:
        """Every variable the graph reads is in the checkpoint with the right shape."""
        reader = self.model.reader
        shapes = reader.get_variable_to_shape_map() if reader else {}
        problems = []
        for source in self.weight_sources.values():
            if source.kind != "variable":
                continue
            key, shape = source.key, source.shape
            if key not in shapes:
                problems.append(f"variable {key!r} is not in the checkpoint")
            elif shape is not None and list(shapes[key]) != list(shape):
                problems.append(f"variable {key!r} is {shapes[key]} in the checkpoint, {shape} in the graph")
        if problems:
            raise InputError(
                f"{self.model.weights_path}: the checkpoint does not match the graph: "
                f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                details=problems,
            )

    def fold(self, tensor) -> np.ndarray:
        """Evaluate a tensor computed only from constants."""
        from codegen.frontends.tensorflow.compat import import_tf_core

        with import_tf_core().Session(graph=self.model.graph) as session:
            return np.asarray(session.run(tensor))

    def read_weight(self, name: str) -> np.ndarray:
        """The value of an IR weight, read from the checkpoint tensor by tensor."""
        source = self.weight_sources[name]
        if source.kind == "variable":
            value = self.model.reader.get_tensor(source.key)
        else:
            value = np.asarray(source.value)
        for kind, argument in source.transforms:
            value = value.reshape(argument) if kind == "reshape" else value.transpose(argument)
        return value


def _toposort(ops: list[Any], order: dict[str, int]) -> list[Any]:
    import networkx as nx

    graph = nx.DiGraph()
    names = {op.name: op for op in ops}
    graph.add_nodes_from(names)
    for op in ops:
        for tensor in op.inputs:
            if tensor.op.name in names:
                graph.add_edge(tensor.op.name, op.name)
    return [names[n] for n in nx.lexicographical_topological_sort(graph, key=order.__getitem__)]


def _unsupported_error(unsupported: dict[str, list[str]]) -> UnsupportedOpsError:
    counts = Counter({op: len(names) for op, names in unsupported.items()})
    summary = ", ".join(f"{op} x{count}" for op, count in counts.most_common())
    details = [f"{op}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
               for op, names in unsupported.items()]
    return UnsupportedOpsError(
        f"the graph has {sum(counts.values())} node(s) of unsupported op types: {summary}; "
        "nothing was written (see the op support table in the README)",
        details=details,
    )
