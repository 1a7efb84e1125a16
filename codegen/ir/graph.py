"""The IR graph: `graph.json` <-> Python objects <-> networkx.

A tensor is referred to as `"<node or input name>:<output index>"`. Nodes keep the order
they were written in; every walk over the graph is a topological order that breaks ties
by that order, so the same IR always gives the same walk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from codegen.errors import InvalidIRError
from codegen.ir.weights import WeightEntry, transform_name

FORMAT = "codegen-ir"
VERSION = 1


@dataclass
class TensorInfo:
    shape: list[int | None]
    dtype: str = "float32"
    # a size known only at run time, held as Python (`seq_len = x.shape[1]`, an int; a shape
    # vector `x.shape`, a tuple of ints), not a tensor: only ops whose catalogue entry says
    # "reads_sizes" read it (ir/validate.py), and the renderer writes it as Python
    size: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass
class GraphInput:
    name: str
    shape: list[int | None]
    dtype: str = "float32"
    tf_name: str = ""


@dataclass
class GraphOutput:
    name: str
    source: str
    tf_name: str = ""


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[TensorInfo]
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    tf_name: str = ""
    scope: str = ""


def split_ref(ref: str) -> tuple[str, int]:
    """'name:3' -> ('name', 3)."""
    name, _, index = ref.rpartition(":")
    return name, int(index)


@dataclass
class Graph:
    inputs: list[GraphInput]
    outputs: list[GraphOutput]
    nodes: dict[str, Node]
    weights: dict[str, WeightEntry]
    layout: str = "NHWC"
    source: dict[str, Any] = field(default_factory=dict)
    # tensor ref -> the TF tensor holding the same values, where passes changed it (a conv
    # that absorbed its BiasAdd now outputs 'conv/BiasAdd:0'); not written to graph.json
    tf_tensors: dict[str, str] = field(default_factory=dict)

    def tf_tensor(self, ref: str) -> str:
        """The name of the TF tensor with the values of `ref` ('scope/op:0')."""
        if ref in self.tf_tensors:
            return self.tf_tensors[ref]
        name, index = split_ref(ref)
        node = self.nodes.get(name)
        return f"{node.tf_name or name}:{index}" if node else f"{name}:{index}"

    # -- queries -------------------------------------------------------------------
    def tensor(self, ref: str) -> TensorInfo:
        """Shape and dtype of a tensor reference."""
        name, index = split_ref(ref)
        if name in self.nodes:
            return self.nodes[name].outputs[index]
        for graph_input in self.inputs:
            if graph_input.name == name:
                return TensorInfo(list(graph_input.shape), graph_input.dtype)
        raise KeyError(ref)

    def consumers(self) -> dict[str, list[Node]]:
        """tensor ref -> nodes reading it (in node order)."""
        readers: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            for ref in node.inputs:
                readers.setdefault(ref, []).append(node)
        return readers

    def to_networkx(self) -> nx.MultiDiGraph:
        """Inputs and nodes as vertices, one edge per data input (key = input position)."""
        graph = nx.MultiDiGraph()
        for order, graph_input in enumerate(self.inputs):
            graph.add_node(graph_input.name, order=-len(self.inputs) + order, op="input")
        for order, node in enumerate(self.nodes.values()):
            graph.add_node(node.name, order=order, op=node.op)
        for node in self.nodes.values():
            for position, ref in enumerate(node.inputs):
                graph.add_edge(split_ref(ref)[0], node.name, key=position)
        return graph

    def topological_order(self) -> list[Node]:
        """Nodes in a deterministic topological order (ties broken by node order)."""
        graph = self.to_networkx()
        order = nx.get_node_attributes(graph, "order")
        names = nx.lexicographical_topological_sort(graph, key=lambda name: order[name])
        return [self.nodes[name] for name in names if name in self.nodes]

    def reorder(self) -> None:
        """Rewrite `nodes` in topological order (after a pass inserted nodes)."""
        self.nodes = {node.name: node for node in self.topological_order()}

    def replace_uses(self, old: str, new: str) -> None:
        """Point every reader of tensor `old` (and the graph outputs) at `new`, except
        the node that produces `new`."""
        producer = split_ref(new)[0]
        for node in self.nodes.values():
            if node.name != producer:
                node.inputs = [new if ref == old else ref for ref in node.inputs]
        for output in self.outputs:
            if output.source == old:
                output.source = new

    def unique_name(self, base: str) -> str:
        taken = set(self.nodes) | {graph_input.name for graph_input in self.inputs}
        name, counter = base, 1
        while name in taken:
            counter += 1
            name = f"{base}_{counter}"
        return name

    def transform_weight(self, node: Node, role: str, *steps: tuple[str, tuple]) -> WeightEntry:
        """Point `node`'s weight `role` at that weight read through `steps` (transpose /
        reshape); the entry other readers see is left as it is. Returns the new entry."""
        name = node.weights[role]
        entry = self.weights[name].transformed(*steps)
        new = transform_name(name.partition("@")[0], entry.transforms)
        self.weights.setdefault(new, entry)
        node.weights[role] = new
        return self.weights[new]

    def iter_weight_refs(self) -> Iterator[tuple[Node, str, str]]:
        for node in self.nodes.values():
            for role, weight in node.weights.items():
                yield node, role, weight

    # -- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        nodes = []
        for node in self.nodes.values():
            entry = asdict(node)
            for info in entry["outputs"]:
                if not info["size"]:
                    del info["size"]
            if not entry["weights"]:
                del entry["weights"]
            nodes.append(entry)
        return {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "layout": self.layout,
            "inputs": [asdict(graph_input) for graph_input in self.inputs],
            "outputs": [asdict(output) for output in self.outputs],
            "nodes": nodes,
            "weights": {name: entry.to_json() for name, entry in self.weights.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Graph:
        nodes: dict[str, Node] = {}
        for raw in data["nodes"]:
            if raw["name"] in nodes:
                raise InvalidIRError(f"graph.json: node name {raw['name']!r} is used twice")
            nodes[raw["name"]] = Node(
                name=raw["name"],
                op=raw["op"],
                inputs=list(raw["inputs"]),
                outputs=[TensorInfo(list(o["shape"]), o["dtype"], bool(o.get("size", False)))
                         for o in raw["outputs"]],
                attrs=dict(raw.get("attrs", {})),
                weights=dict(raw.get("weights", {})),
                tf_name=raw.get("tf_name", ""),
                scope=raw.get("scope", ""),
            )
        return cls(
            inputs=[GraphInput(**raw) for raw in data["inputs"]],
            outputs=[GraphOutput(**raw) for raw in data["outputs"]],
            nodes=nodes,
            weights={name: WeightEntry.from_json(raw) for name, raw in data["weights"].items()},
            layout=data["layout"],
            source=dict(data.get("source", {})),
        )

    def save(self, ir_dir: Path) -> Path:
        path = Path(ir_dir) / "graph.json"
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path
