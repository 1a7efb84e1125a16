"""The "same run-time size" analysis (codegen/ir/same_size.py) and the pass that reads a
layer's sizes from the model's inputs (codegen/ir/passes/size_reads.py), on IR graphs the
tests write, without TensorFlow: a decoder layer's residual stream has the token ids'
length, so its causal mask reads that length from the ids and is made once
(hoist_input_masks); anything not proved (an op without a rule, a broadcast that may
stretch an axis) keeps its read, and the masks of one kind move together or not at all."""

from __future__ import annotations

from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.passes.hoist import hoist_input_masks
from codegen.ir.passes.size_reads import sizes_from_inputs
from codegen.ir.same_size import axis_sources, same_input

HIDDEN = [None, None, 8]


def _node(name: str, op: str, inputs: list[str], shape: list, dtype: str = "float32",
          scope: str = "model", **attrs) -> Node:
    return Node(name, op, inputs, [TensorInfo(shape, dtype)], attrs=attrs, scope=scope)


def _graph(nodes: list[Node], inputs=None) -> Graph:
    inputs = inputs or [GraphInput("token_ids", [None, None], "int32"),
                        GraphInput("padding_mask", [None, None], "int32")]
    last = nodes[-1].name
    return Graph(inputs, [GraphOutput("y", f"{last}:0")], {n.name: n for n in nodes}, {})


def _layer(index: int, residual: str) -> list[Node]:
    """One decoder layer: norm -> q projection -> heads -> attention(mask) -> flatten ->
    projection -> + residual; the mask built from the residual's length, in the layer."""
    scope = f"model/layer_{index}"
    p = f"l{index}_"
    return [
        _node(p + "norm", "rms_norm", [f"{residual}:0"], HIDDEN, scope=scope, axis=2,
              epsilon=1e-6, plus_one=False),
        _node(p + "q", "linear", [p + "norm:0"], HIDDEN, scope=scope),
        _node(p + "heads", "unflatten", [p + "q:0"], [None, None, 2, 4], scope=scope, axis=2,
              sizes=[2, 4]),
        _node(p + "mask", "causal_mask", [f"{residual}:0", "padding_mask:0"],
              [None, 1, None, None], "bool", scope=f"{scope}/attention"),
        _node(p + "attn", "attention", [p + "heads:0", p + "heads:0", p + "heads:0",
                                        p + "mask:0"], [None, None, 2, 4],
              scope=f"{scope}/attention", scale=0.5, masked=True),
        _node(p + "merged", "flatten", [p + "attn:0"], HIDDEN, scope=scope, axis=2),
        _node(p + "out", "linear", [p + "merged:0"], HIDDEN, scope=scope),
        _node(p + "add", "add", [p + "out:0", f"{residual}:0"], HIDDEN, scope=scope),
    ]


def _decoder(layers: int = 2) -> Graph:
    nodes = [_node("embed", "embedding", ["token_ids:0"], HIDDEN, scope="model/embed")]
    for index in range(layers):
        nodes += _layer(index, nodes[-1].name)
    return _graph(nodes)


def test_the_residual_stream_has_the_token_ids_length():
    sources = axis_sources(_decoder())
    ids = "token_ids:0"
    assert sources["embed:0"] == [(ids, 0), (ids, 1), None]
    assert sources["l1_add:0"] == [(ids, 0), (ids, 1), None]  # through attention, flatten
    assert sources["l1_heads:0"] == [(ids, 0), (ids, 1), None, None]
    assert same_input(sources, "l1_add:0", (1,)) == ids
    assert same_input(sources, "l1_add:0", (2,)) is None  # (a static size: no input's)
    assert sources["padding_mask:0"] == [("padding_mask:0", 0), ("padding_mask:0", 1)]


def test_the_mask_reads_the_ids_length_and_is_made_once_at_the_top():
    graph = hoist_input_masks(sizes_from_inputs(_decoder(3)))
    masks = [node for node in graph.nodes.values() if node.op == "causal_mask"]
    assert len(masks) == 1
    assert masks[0].inputs == ["token_ids:0", "padding_mask:0"] and masks[0].scope == "model"
    assert {graph.nodes[f"l{i}_attn"].inputs[3] for i in range(3)} == {f"{masks[0].name}:0"}


def test_an_op_without_a_rule_ends_the_trail():
    nodes = [_node("embed", "embedding", ["token_ids:0"], HIDDEN),
             _node("swapped", "transpose", ["embed:0"], HIDDEN, perm=[1, 0, 2]),
             _node("mask", "causal_mask", ["swapped:0"], [1, 1, None, None], "bool")]
    graph = sizes_from_inputs(_graph(nodes))
    assert axis_sources(graph)["swapped:0"] == [None, None, None]
    assert graph.nodes["mask"].inputs == ["swapped:0"]


def test_broadcast_keeps_an_axis_only_when_every_input_agrees():
    inputs = [GraphInput("a", [None, None, 8]), GraphInput("b", [None, None, 8]),
              GraphInput("bias", [1, 1, 8])]
    nodes = [_node("biased", "add", ["a:0", "bias:0"], HIDDEN),  # static 1s broadcast
             _node("scaled", "mul", ["biased:0", "a:0"], HIDDEN),  # same source twice
             _node("mixed", "add", ["a:0", "b:0"], HIDDEN),  # b's size 1 could stretch
             _node("mask", "causal_mask", ["mixed:0"], [1, 1, None, None], "bool")]
    graph = _graph(nodes, inputs)
    sources = axis_sources(graph)
    assert sources["biased:0"] == [("a:0", 0), ("a:0", 1), None]
    assert sources["scaled:0"] == [("a:0", 0), ("a:0", 1), None]
    assert sources["mixed:0"] == [None, None, None]
    assert sizes_from_inputs(graph).nodes["mask"].inputs == ["mixed:0"]


def test_flatten_unflatten_keep_the_axes_before_theirs_unflatten_as_reads_its_sizes():
    inputs = [GraphInput("x", [None, None, None, 6])]
    nodes = [_node("merged", "flatten", ["x:0"], [None, None], axis=1),
             _node("split", "unflatten", ["x:0"], [None, None, None, 2, 3], axis=3,
                   sizes=[2, 3])]
    nodes.append(_node("back", "unflatten_as", ["merged:0", "x:0"], [None, None, None],
                       axis=0, count=2))  # [N * T, C] -> [N, T, C] (x's sizes at run time)
    sources = axis_sources(_graph(nodes, inputs))
    assert sources["merged:0"] == [("x:0", 0), None]
    assert sources["back:0"] == [("x:0", 0), ("x:0", 1), None]
    assert sources["split:0"] == [("x:0", 0), ("x:0", 1), ("x:0", 2), None, None]


def test_masks_that_would_be_one_move_together_or_not_at_all():
    nodes = list(_decoder(3).nodes.values())
    nodes.append(_node("late", "transpose", ["l2_add:0"], HIDDEN, perm=[0, 1, 2]))
    nodes += _layer(3, "late")  # layer 3's input: not proved (a transpose has no rule)
    graph = sizes_from_inputs(_graph(nodes))
    assert [graph.nodes[f"l{i}_mask"].inputs[0] for i in range(4)] == [
        "embed:0", "l0_add:0", "l1_add:0", "late:0"]


def test_slices_keep_the_axes_they_take_whole_and_concat_every_other():
    inputs = [GraphInput("x", [None, None, 8]), GraphInput("y", [None, None, 8])]
    whole, head = [None, None, 1], [None, 4, 1]
    nodes = [_node("left", "slice", ["x:0"], [None, None, 4], axes=[whole, whole, head]),
             _node("tail", "slice", ["x:0"], [None, None, 4],
                   axes=[whole, [1, None, 1], [4, None, 1]]),  # (from the 2nd step on)
             _node("joined", "concat", ["left:0", "y:0"], [None, None, 12], axis=-1),
             _node("stacked", "concat", ["x:0", "y:0"], [None, None, 8], axis=1)]
    sources = axis_sources(_graph(nodes, inputs))
    assert sources["left:0"] == [("x:0", 0), ("x:0", 1), None]
    assert sources["tail:0"] == [("x:0", 0), None, None]
    assert sources["joined:0"] == [("x:0", 0), ("x:0", 1), None]  # (y agrees: cat needs it)
    assert sources["stacked:0"] == [("x:0", 0), None, ("x:0", 2)]
