"""Renderers of the sequence-model ops: attention, heads split and merged, position
tables, masks and shapes read at run time (see ops.py for Layer/Expr)."""

from __future__ import annotations

from codegen.backends.pytorch.registry import (
    CAST_METHODS,
    TORCH_DTYPES,
    Expr,
    Layer,
    _float,
    renderer,
)
from codegen.ir.graph import Graph, Node

SEQUENCE = "ops/sequence.py.jinja"


# x.bool(), x.int(), ... (all of them tensor methods)


class SelectIndex(tuple):
    """(axis, index); its repr is the index text, e.g. `:, 0` (ints only reach the text)."""

    def __new__(cls, axis: int, index: int):
        return super().__new__(cls, (int(axis), int(index)))

    def __repr__(self) -> str:
        return ":, " * self[0] + str(self[1])


@renderer("lstm_block_cell")
def lstm_block_cell(node: Node, graph: Graph) -> Expr:
    """TF's fused LSTM cell step as the generated `lstm_block_cell` helper (plain arithmetic)."""
    a = node.attrs
    attrs = {"kind": "lstm_block_cell"}
    if a["forget_bias"] != 1.0:
        attrs["forget_bias"] = _float(a["forget_bias"])
    if a.get("cell_clip") is not None:
        attrs["cell_clip"] = _float(a["cell_clip"])
    if a["use_peephole"]:
        attrs["use_peephole"] = True
    return Expr(SEQUENCE, attrs, hint="cell", helpers=("lstm_block_cell",))


@renderer("attention")
def attention(node: Node, graph: Graph) -> Expr:
    """F.scaled_dot_product_attention on [N, H, T, D]: the heads move before time and back."""
    return Expr("ops/attention.py.jinja",
                {"kind": "attention", "scale": _float(node.attrs["scale"]),
                 "masked": node.attrs["masked"], "causal": node.attrs.get("causal", False),
                 "gqa": node.attrs.get("gqa", False)},
                hint="attn")


@renderer("rotary_embedding")
def rotary_embedding(node: Node, graph: Graph) -> Layer:
    """`cos, sin = self.rotary_emb(x)`: the angles of x's positions, inv_freq a buffer."""
    args = {"dim": node.attrs["dim"], "base": node.attrs.get("base", 10000)}
    if "scaling_factor" in node.attrs:
        args["scaling_factor"] = node.attrs["scaling_factor"]
    return Layer("ops/attention.py.jinja", "RotaryEmbedding", args,
                 {"inv_freq": node.weights["inv_freq"]}, "rotary_emb", ("RotaryEmbedding",),
                 unpack="{0}, {1}", outputs=("{0}", "{0}"), state_names=("", ""),
                 output_names=("cos", "sin"))


@renderer("apply_rotary_pos_emb")
def apply_rotary_pos_emb(node: Node, graph: Graph) -> Expr:
    """`q, k = apply_rotary_pos_emb(q, k, cos, sin)` (one tensor: x * cos + rotate_half(x) * sin)."""
    helpers = ("rotate_half", "apply_rotary_pos_emb") if len(node.inputs) == 4 else ("rotate_half",)
    return Expr("ops/attention.py.jinja", {"kind": "apply_rotary_pos_emb"}, hint="rotated",
                helpers=helpers, output_names=("q", "k") if len(node.inputs) == 4 else ())


@renderer("relative_position_bucket")
def relative_position_bucket(node: Node, graph: Graph) -> Expr:
    """`relative_position_bucket(memory - context, bidirectional=..., num_buckets=...,
    max_distance=...)`: T5's buckets, one generated helper as in HF's modeling_t5.py."""
    a = node.attrs
    return Expr("ops/position_bucket.py.jinja",
                {"bidirectional": bool(a["bidirectional"]), "num_buckets": int(a["num_buckets"]),
                 "max_distance": int(a["max_distance"])},
                hint="buckets", helpers=("relative_position_bucket",))


@renderer("alibi_bias")
def alibi_bias(node: Node, graph: Graph) -> Layer:
    """`scores = self.alibi(scores)`: ALiBi's linear bias, the per-head slopes a buffer."""
    return Layer("ops/alibi.py.jinja", "AlibiBias", {"num_heads": node.attrs["num_heads"]},
                 {"slopes": node.weights["slopes"]}, "alibi", ("AlibiBias",))


@renderer("position_embedding")
def position_embedding(node: Node, graph: Graph) -> Layer:
    num, dim = graph.weights[node.weights["table"]].out_shape
    return Layer("ops/attention.py.jinja", "PositionEmbedding",
                 {"num_embeddings": num, "embedding_dim": dim, "axis": node.attrs["axis"]},
                 {"weight": node.weights["table"]}, "position_embedding", ("PositionEmbedding",))


@renderer("einsum", "matmul", "select", "unflatten", "unflatten_as", "flatten", "unsqueeze", "cast", "full_like", "expand_as",
           "less", "one_hot", "logical_and", "where", "causal_mask", "expand")
def sequence_op(node: Node, graph: Graph) -> Expr:
    attrs: dict = {"kind": node.op}
    if node.op == "einsum":
        attrs["equation"] = node.attrs["equation"]
    elif node.op == "matmul":
        attrs.update(adj_x=node.attrs["adj_x"], adj_y=node.attrs["adj_y"])
    elif node.op == "select":
        attrs["index"] = SelectIndex(node.attrs["axis"], node.attrs["index"])
    elif node.op == "unflatten":
        attrs.update(axis=node.attrs["axis"], sizes=tuple(node.attrs["sizes"]))
    elif node.op == "unflatten_as":
        attrs.update(axis=node.attrs["axis"], stop=node.attrs["axis"] + node.attrs["count"])
    elif node.op == "flatten":
        attrs.update(axis=node.attrs["axis"], end_axis=node.attrs.get("end_axis"))
    elif node.op == "causal_mask" and node.attrs.get("window"):  # keys i - W < j <= i
        attrs["diagonal"] = 1 - int(node.attrs["window"])
    elif node.op == "unsqueeze" or node.op == "expand":
        attrs["axes"] = tuple(node.attrs["axes"])
    elif node.op == "cast" and node.outputs[0].size:  # float(seq_len)
        from codegen.backends.pytorch.size_ops import size_cast

        return size_cast(node, graph)
    elif node.op == "cast" and node.attrs["dtype"] == "complex64":
        return Expr("ops/spectral.py.jinja", {"kind": "to_complex"})
    elif node.op == "cast":
        attrs["method"] = CAST_METHODS[node.attrs["dtype"]]
    elif node.op == "one_hot" and "axis" in node.attrs:  # any axis, on / off and dtype
        from codegen.backends.pytorch.gather_ops import one_hot
        return one_hot(node)
    elif node.op == "one_hot":
        attrs["depth"] = int(node.attrs["depth"])
    elif node.op == "full_like":
        attrs["value"] = node.attrs["value"]
        attrs["dtype"] = TORCH_DTYPES[node.attrs["dtype"]]
    hint = {"unflatten": "heads", "where": "x", "less": "mask", "logical_and": "mask",
            "causal_mask": "mask"}
    return Expr(SEQUENCE, attrs, hint=hint.get(node.op, "x"))
