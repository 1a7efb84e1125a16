"""Rotary cos and sin made once (codegen/ir/passes/rotary.py), on IR graphs the tests write,
without TensorFlow: the per-layer `rotary_embedding` copies of a decoder (same attributes,
the same inv_freq values in weights of their own, the query's length the token ids') become
one, in the model's scope, reading the token embedding's output; copies that differ, or
whose length is not proved, stay."""

from __future__ import annotations

from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.passes.rotary import hoist_rotary
from codegen.ir.weights import WeightEntry

HEADS = [None, None, 2, 4]
ANGLES = [1, None, 1, 4]


def _weight(sha: str) -> WeightEntry:
    return WeightEntry(file=f"weights/{sha}.npy", shape=[2], dtype="float32", sha256=sha)


def _layer(index: int, residual: str, keep_length: bool = True) -> list[Node]:
    scope, p = f"model/layer_{index}/attention", f"l{index}_"
    reshape = ("unflatten", {"axis": 2, "sizes": [2, 4]}) if keep_length else (
        "transpose", {"perm": [0, 1, 2]})
    return [
        Node(p + "q", "linear", [f"{residual}:0"], [TensorInfo([None, None, 8])],
             scope=f"{scope}/query"),
        Node(p + "heads", reshape[0], [p + "q:0"],
             [TensorInfo(HEADS if keep_length else [None, None, 8])], attrs=reshape[1],
             scope=scope),
        Node(p + "rope", "rotary_embedding", [p + "heads:0"], [TensorInfo(ANGLES)] * 2,
             attrs={"dim": 4, "base": 10000}, weights={"inv_freq": f"inv_freq_{index}"},
             scope=f"{scope}/rotary_emb"),
        Node(p + "rotated", "apply_rotary_pos_emb", [p + "heads:0", p + "rope:0", p + "rope:1"],
             [TensorInfo(HEADS)], scope=scope),
        Node(p + "merged", "flatten", [p + "rotated:0"], [TensorInfo([None, None, 8])],
             attrs={"axis": 2}, scope=scope),
        Node(p + "add", "add", [p + "merged:0", f"{residual}:0"], [TensorInfo([None, None, 8])],
             scope=f"model/layer_{index}"),
    ]


def _decoder(shas=("a", "a", "a"), broken=()) -> Graph:
    nodes = [Node("embed", "embedding", ["token_ids:0"], [TensorInfo([None, None, 8])],
                  weights={"table": "table"}, scope="model/embed")]
    for index in range(len(shas)):
        nodes += _layer(index, nodes[-1].name, index not in broken)
    weights = {f"inv_freq_{i}": _weight(sha) for i, sha in enumerate(shas)}
    weights["table"] = WeightEntry(file="weights/table.npy", shape=[10, 8], dtype="float32",
                                   sha256="t")
    return Graph([GraphInput("token_ids", [None, None], "int32")],
                 [GraphOutput("y", f"{nodes[-1].name}:0")], {n.name: n for n in nodes}, weights)


def _ropes(graph: Graph) -> list[Node]:
    return [node for node in graph.nodes.values() if node.op == "rotary_embedding"]


def test_the_layers_copies_become_one_in_the_models_forward():
    graph = hoist_rotary(_decoder())
    (rope,) = _ropes(graph)
    assert rope.scope == "model/rotary_emb" and rope.inputs == ["embed:0"]
    for index in range(3):
        assert graph.nodes[f"l{index}_rotated"].inputs[1:] == [f"{rope.name}:0", f"{rope.name}:1"]
    assert sorted(name for name in graph.weights if name.startswith("inv_freq")) == \
        [rope.weights["inv_freq"]]


def test_copies_with_other_frequencies_stay_apart():
    graph = hoist_rotary(_decoder(shas=("a", "b", "a")))
    ropes = _ropes(graph)
    assert [rope.name for rope in ropes] == ["l0_rope", "l1_rope"]
    assert graph.nodes["l2_rotated"].inputs[1] == "l0_rope:0"
    assert graph.nodes["l1_rope"].scope == "model/layer_1/attention/rotary_emb"
    assert set(graph.weights) == {"inv_freq_0", "inv_freq_1", "table"}


def test_a_length_not_proved_in_one_layer_keeps_every_copy():
    graph = hoist_rotary(_decoder(broken=(2,)))  # (layer 2: a transpose, no rule)
    assert [rope.inputs for rope in _ropes(graph)] == [[f"l{i}_heads:0"] for i in range(3)]
