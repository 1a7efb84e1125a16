"""Layout noise out of the graph, exactly: a chain of permutes is one permute (none where
they cancel), and a reduction whose result is only reshaped back to the reduced axes as
size 1 (`x.mean(dim=(2, 3)).reshape(-1, 96, 1, 1)`, a Keras squeeze-excite's pooling and
Reshape) keeps those axes itself (`x.mean(dim=(2, 3), keepdim=True)`).

Both run on NCHW graphs, after the layout pass (which writes permutes of its own)."""

from __future__ import annotations

from codegen.ir.graph import Graph, Node, split_ref

REDUCTIONS = ("mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_any",
              "reduce_all", "euclidean_norm")


def _producer(graph: Graph, ref: str) -> Node | None:
    return graph.nodes.get(split_ref(ref)[0])


def _readers(graph: Graph, ref: str) -> int:
    count = sum(node.inputs.count(ref) for node in graph.nodes.values())
    return count + sum(output.source == ref for output in graph.outputs)


def _is_input(graph: Graph, ref: str) -> bool:
    return split_ref(ref)[0] not in graph.nodes


def compose_transposes(graph: Graph) -> Graph:
    """transpose(transpose(x, p), q) -> transpose(x, p[q]); dropped where that is the
    identity. The first permute stays only while something else reads it."""
    for node in graph.topological_order():
        if node.op != "transpose" or node.name not in graph.nodes:
            continue
        first = _producer(graph, node.inputs[0])
        while first is not None and first.op == "transpose":
            inner, outer = first.attrs["perm"], node.attrs["perm"]
            if len(inner) != len(outer):
                break
            node.attrs["perm"] = [inner[axis] for axis in outer]
            node.inputs = list(first.inputs)
            if not _readers(graph, f"{first.name}:0"):
                del graph.nodes[first.name]
            first = _producer(graph, node.inputs[0])
        perm = node.attrs["perm"]
        ref = f"{node.name}:0"
        if perm != sorted(perm):
            continue
        if _is_input(graph, node.inputs[0]) and any(o.source == ref for o in graph.outputs):
            continue  # an output that is an input unchanged: keep one node to name it
        graph.replace_uses(ref, node.inputs[0])
        del graph.nodes[node.name]
    return graph


def keepdim_reductions(graph: Graph) -> Graph:
    """reduce(x, axes) read only by a reshape (or an unsqueeze) to the shape the reduction
    has with keepdims -> reduce(x, axes, keepdims=True). Exact: size-1 axes put back where
    they were leave every element where it was."""
    for node in [n for n in graph.topological_order() if n.op in REDUCTIONS]:
        if node.attrs.get("keepdims") or len(node.outputs) != 1:
            continue
        ref = f"{node.name}:0"
        readers = [n for n in graph.nodes.values() if ref in n.inputs]
        if len(readers) != 1 or _readers(graph, ref) != 1:
            continue
        reader = readers[0]
        source = graph.tensor(node.inputs[0]).shape
        axes = sorted(axis % len(source) for axis in node.attrs["axes"])
        kept = [1 if axis in axes else size for axis, size in enumerate(source)]
        if not _restores(reader, axes, kept):
            continue
        node.attrs["keepdims"] = True
        node.outputs[0].shape = list(reader.outputs[0].shape)
        graph.tf_tensors[ref] = graph.tf_tensor(f"{reader.name}:0")
        graph.replace_uses(f"{reader.name}:0", ref)
        del graph.nodes[reader.name]
    return graph


def _restores(reader: Node, axes: list[int], kept: list[int | None]) -> bool:
    """`reader` gives the reduction's result the shape `kept` (the reduced axes as size 1)."""
    if reader.op == "unsqueeze":
        return sorted(reader.attrs["axes"]) == axes and reader.outputs[0].rank == len(kept)
    if reader.op != "reshape":
        return False
    target, out = reader.attrs["shape"], reader.outputs[0].shape
    if len(target) != len(kept) or out != kept:
        return False
    # every size the reshape names agrees with `kept`; -1 stands for the one unknown size
    unknown = [axis for axis, size in enumerate(kept) if size is None]
    for axis, (size, want) in enumerate(zip(target, kept)):
        if size == -1:
            if unknown not in ([axis], []):
                return False
        elif size != want:
            return False
    return len(unknown) <= 1 and (not unknown or target[unknown[0]] == -1)
