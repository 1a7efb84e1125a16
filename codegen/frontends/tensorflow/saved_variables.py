"""The variables of a TF2 SavedModel read from its files: each one's checkpoint key, its own
name, whether the source trains it, and the source's trainable count (saved_files.py).

Each variable is a node of the saved object graph, and the checkpoint's own object graph
(same node ids) names the key its value is stored under. A variable may be reached through
several paths (a Keras export lists it under `variables/` and `trainable_variables/`), so
everything is keyed by node, never by path or name: two variables may share a name (the
relative-position tables of T5's encoder and decoder are both `self_attention/embeddings`).

Which variables train: a Keras 3 export keeps the model's `trainable_variables` and
`non_trainable_variables` lists on the root, as Keras variables; its functions capture other
nodes (the tf.Variables inside them, under `_all_variables/`), whose own `trainable` flag
says nothing of a frozen layer (Whisper's encoder position table). So a captured variable
takes the list of the listed node of the same name and shape (a tie broken by value), and
the source's count is the sum of the list. Without these lists (a tf.Module), the flag of
each variable node says.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field


@dataclass
class SavedVariables:
    names: dict[str, str]  # checkpoint key -> the variable's own name (Keras `variable.path`)
    trained: set[str]  # checkpoint keys of the variables the source trains
    count: int  # the source's trainable values, each variable once
    # the source's trainable variables that none of `read` reads (name -> size)
    unread: dict[str, int] = field(default_factory=dict)


def read(object_graph, reader, read_keys: set[str]) -> SavedVariables | None:
    """The variables of `object_graph`; `read_keys` are the checkpoint keys the converted
    function reads. None when the checkpoint does not say which key is which node's."""
    keys = _node_keys(object_graph, reader)
    if keys is None:
        return None
    variables = {index: node.variable for index, node in enumerate(object_graph.nodes)
                 if node.WhichOneof("kind") == "variable"}
    shapes = reader.get_variable_to_shape_map()

    def size(index: int) -> int:
        dims = [dim.size for dim in variables[index].shape.dim]
        if any(dim < 0 for dim in dims) and keys.get(index) in shapes:
            dims = shapes[keys[index]]
        return math.prod(dims)

    paths = _paths(object_graph)
    names = {keys[i]: name for i, v in variables.items() if i in keys
             if (name := _own_name(v.name.removesuffix(":0"), paths.get(i, "")))}
    listed = _listed(object_graph, variables)
    if listed is None:  # each variable's own flag
        trainable = {i for i, v in variables.items() if v.trainable}
        unread = {names.get(keys.get(i), v.name) or str(i): size(i) for i, v in variables.items()
                  if i in trainable and keys.get(i) not in read_keys}
        return SavedVariables(names, {keys[i] for i in trainable if i in keys},
                              sum(size(i) for i in trainable), unread)
    trained_list, frozen_list = listed
    matched, trained = set(), set()
    for index in sorted(variables):
        if index not in keys or keys[index] not in read_keys:
            continue
        twin = _twin(index, variables, trained_list + frozen_list, matched, reader, keys)
        if twin is not None:
            matched.add(twin)
        if (twin in trained_list) if twin is not None else variables[index].trainable:
            trained.add(keys[index])
    unread = {variables[i].name.removesuffix(":0") or str(i): size(i)
              for i in trained_list if i not in matched}
    return SavedVariables(names, trained, sum(size(i) for i in trained_list), unread)


def _paths(object_graph) -> dict[int, str]:
    """Node id -> the shortest path of attribute names from the root (`conv1/kernel`)."""
    paths, queue = {0: ""}, deque([0])
    while queue:
        index = queue.popleft()
        for child in object_graph.nodes[index].children:
            if child.node_id not in paths:
                paths[child.node_id] = f"{paths[index]}/{child.local_name}".lstrip("/")
                queue.append(child.node_id)
    return paths


def _own_name(name: str, path: str) -> str:
    """The name a variable is known by: its own where that names its layer (Keras
    `dense/kernel`), else the attribute path it is saved under (`conv1/kernel` for a
    `tf.Module`'s `self.conv1.kernel`, `conv1_kernel` for a `tf.Variable` left unnamed)."""
    if "/" in name or not path:
        return name
    if "/" in path or not name or re.fullmatch(r"Variable(_\d+)?", name):
        return path
    return name


def _node_keys(object_graph, reader) -> dict[int, str] | None:
    """Variable node id -> its checkpoint key, from the checkpoint's own object graph."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception:  # noqa: BLE001 - no such tensor, or not the proto
        return None
    if len(graph.nodes) != len(object_graph.nodes):
        return None
    return {index: attribute.checkpoint_key for index, node in enumerate(graph.nodes)
            for attribute in node.attributes if attribute.name == "VARIABLE_VALUE"}


def _listed(object_graph, variables) -> tuple[list[int], list[int]] | None:
    """The variable nodes of the root's `trainable_variables` and `non_trainable_variables`
    lists (each node once), or None when the root has no such lists."""
    root = object_graph.nodes[0] if object_graph.nodes else None
    children = {child.local_name: child.node_id for child in getattr(root, "children", ())}
    if "trainable_variables" not in children:
        return None
    lists = []
    for name in ("trainable_variables", "non_trainable_variables"):
        node = object_graph.nodes[children[name]] if name in children else None
        ids = [child.node_id for child in getattr(node, "children", ())]
        if any(i not in variables for i in ids):
            return None
        lists.append(list(dict.fromkeys(ids)))
    return lists[0], lists[1]


def _twin(index: int, variables, listed: list[int], matched: set[int], reader,
          keys: dict[int, str]) -> int | None:
    """The listed node that is variable `index` (itself, or the Keras variable holding it):
    the same name, shape and dtype, not matched yet; of several, the one of equal value."""
    if index in listed:
        return index
    this = variables[index]

    def same(other) -> bool:
        return (other.name == this.name and other.dtype == this.dtype
                and [d.size for d in other.shape.dim] == [d.size for d in this.shape.dim])

    candidates = [i for i in listed if i not in matched and same(variables[i])]
    if len(candidates) > 1 and index in keys:
        import numpy as np

        value = reader.get_tensor(keys[index])
        candidates = [i for i in candidates if i in keys
                      and np.array_equal(reader.get_tensor(keys[i]), value)] or candidates
    return candidates[0] if candidates else None
