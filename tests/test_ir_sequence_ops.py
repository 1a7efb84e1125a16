"""Per-op tests without TensorFlow for the sequence-model ops (attention, heads split and
merged, run-time shapes, masks): an IR graph the test writes, built and run, compared with
a numpy reference (as tests/test_ir_ops.py does for the others, which counts these in)."""

from __future__ import annotations

import numpy as np
import pytest
from test_ir_ops import run_one_op

from codegen.ir.graph import Node, TensorInfo

RNG = np.random.default_rng(1)


def const(name: str, value: np.ndarray) -> Node:
    return Node(name, "constant", [], [TensorInfo(list(value.shape))],
                attrs={"_value": value.astype(np.float32)}, weights={"value": f"{name}/value"})


def node(name: str, op: str, inputs: list[str], shape: list, out="float32", **attrs) -> Node:
    return Node(name, op, inputs, [TensorInfo(shape, out)], attrs=attrs)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_attention_with_a_mask(tmp_path):
    """q from the input ([N, T, H * D] split into heads), k and v constants, a 0/1 mask
    cast to bool; softmax(q k^T * scale) v per head, masked keys excluded."""
    x = RNG.normal(0, 1, (2, 5, 8)).astype(np.float32)
    k, v = RNG.normal(0, 1, (2, 6, 2, 4)), RNG.normal(0, 1, (2, 6, 2, 4))
    mask = np.ones((2, 1, 1, 6))
    mask[0, ..., 4:] = 0
    mask[1, ..., :2] = 0
    extra = [node("q", "unflatten", ["x:0"], [None, 5, 2, 4], axis=2, sizes=[2, 4]),
             const("k", k), const("v", v), const("m", mask),
             node("mask", "cast", ["m:0"], [2, 1, 1, 6], "bool", dtype="bool")]
    ours = run_one_op(tmp_path, "attention", x, [None, 5, 2, 4], extra=extra,
                      attrs={"scale": 0.3, "masked": True},
                      inputs=["q:0", "k:0", "v:0", "mask:0"])
    q = x.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 2, 3, 1) * 0.3 + np.where(mask > 0, 0, -np.inf)
    expected = (softmax(scores) @ v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_causal_attention(tmp_path):
    """attention with causal=True and no mask: query i attends keys 0..i (is_causal)."""
    x = RNG.normal(0, 1, (2, 5, 8)).astype(np.float32)
    k, v = RNG.normal(0, 1, (2, 5, 2, 4)), RNG.normal(0, 1, (2, 5, 2, 4))
    extra = [node("q", "unflatten", ["x:0"], [None, 5, 2, 4], axis=2, sizes=[2, 4]),
             const("k", k), const("v", v)]
    ours = run_one_op(tmp_path, "attention", x, [None, 5, 2, 4], extra=extra,
                      attrs={"scale": 0.3, "masked": False, "causal": True},
                      inputs=["q:0", "k:0", "v:0"])
    q = x.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 2, 3, 1) * 0.3 + np.where(np.tril(np.ones((5, 5))), 0, -np.inf)
    expected = (softmax(scores) @ v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_position_embedding_and_expand_as(tmp_path):
    x = RNG.normal(0, 1, (2, 3, 4)).astype(np.float32)
    table = RNG.normal(0, 1, (6, 4)).astype(np.float32)
    rows = Node("rows", "position_embedding", ["x:0"], [TensorInfo([3, 4])],
                attrs={"axis": 1, "_table": table}, weights={"table": "rows/table"})
    ours = run_one_op(tmp_path, "expand_as", x, [None, 3, 4], extra=[rows],
                      inputs=["rows:0", "x:0"])
    np.testing.assert_allclose(ours, np.broadcast_to(table[:3], x.shape))


X = RNG.normal(0, 1, (2, 5, 6)).astype(np.float32)
B = RNG.normal(0, 1, (2, 6, 3)).astype(np.float32)
CASES = {  # op -> (out shape, attrs, extra nodes, inputs, numpy reference of X)
    "unflatten": ([None, 5, 2, 3], {"axis": 2, "sizes": [2, 3]}, [], None,
                  lambda x: (x.reshape(2, 5, 2, 3))),
    "flatten": ([None, 5 * 6], {"axis": 1}, [], None, lambda x: x.reshape(2, 30)),
    "unsqueeze": ([None, 5, 1, 6], {"axes": [2]}, [], None, lambda x: (x[:, :, None])),
    "select": ([None, 6], {"axis": 1, "index": 2}, [], None, lambda x: x[:, 2]),
    "einsum": ([None, 5, 3], {"equation": "abc,acd->abd"}, [const("b", B)], ["x:0", "b:0"],
               lambda x: np.einsum("abc,acd->abd", x, B)),
    "matmul": ([None, 5, 5], {"adj_x": False, "adj_y": True}, [], ["x:0", "x:0"],
               lambda x: x @ x.transpose(0, 2, 1)),
    "cast": ([None, 5, 6], {"dtype": "bool"}, [node("r", "relu", ["x:0"], [None, 5, 6])],
             ["r:0"], lambda x: x > 0),
    "cast_float32": ([None, 5, 6], {"dtype": "float32"}, [
        node("r", "relu", ["x:0"], [None, 5, 6]), node("pos", "cast", ["r:0"], [None, 5, 6], "bool",
                                                       dtype="bool")],
        ["pos:0"], lambda x: (x > 0).astype(np.float32)),
    "one_hot": ([None, 5, 6, 4], {"depth": 4}, [node("r", "relu", ["x:0"], [None, 5, 6])], ["r:0"],
                lambda x: (np.eye(4, dtype=np.float32)[np.trunc(np.maximum(x, 0)).astype(int)])),
    "full_like": ([None, 5, 6], {"value": 2.5, "dtype": "float32"}, [], None,
                  lambda x: np.full_like(x, 2.5)),
    "less": ([None, 5, 6], {}, [const("h", np.full((6,), 0.5))], ["x:0", "h:0"],
             lambda x: x < 0.5),
    "logical_and": ([None, 5, 6], {}, [
        node("lt", "less", ["x:0", "h:0"], [None, 5, 6], "bool"), const("h", np.full((6,), 0.5)),
        node("r", "relu", ["x:0"], [None, 5, 6]), node("pos", "cast", ["r:0"], [None, 5, 6], "bool",
                                                       dtype="bool")],
        ["lt:0", "pos:0"], lambda x: (x < 0.5) & (x > 0)),
    "where": ([None, 5, 6], {}, [
        node("lt", "less", ["x:0", "h:0"], [None, 5, 6], "bool"), const("h", np.full((6,), 0.5))],
        ["lt:0", "x:0", "h:0"], lambda x: np.where(x < 0.5, x, 0.5)),
    "unflatten_as": ([None, 5, 6], {"axis": 0, "count": 2}, [
        node("folded", "flatten", ["x:0"], [None, 6], axis=0, end_axis=1)], ["folded:0", "x:0"],
        lambda x: x),
    "expand": ([None, 1, 6], {"axes": [0, None, None]}, [const("c", B[:1, :1, :].repeat(2, 2))],
               ["c:0", "x:0"], lambda x: np.broadcast_to(B[:1, :1].repeat(2, 2), (2, 1, 6))),
    "causal_mask": ([None, 1, 5, 5], {}, [node("p", "select", ["x:0"], [None, 5], axis=2, index=0)],
                    ["x:0", "p:0"], lambda x: (
                        np.tril(np.ones((5, 5), bool)) & (x[:, None, None, :, 0] > 0))),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_sequence_op(op, tmp_path):
    out_shape, attrs, extra, inputs, reference = CASES[op]
    extra = [Node(n.name, n.op, n.inputs, n.outputs, dict(n.attrs), dict(n.weights)) for n in extra]
    ours = run_one_op(tmp_path, op.removesuffix("_float32"), X, out_shape, attrs=dict(attrs), extra=extra, inputs=inputs)
    expected = reference(X)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)




def _complex(name: str, source: str = "x:0") -> Node:
    return node(name, "cast", [source], [None, 5, 6], "complex64", dtype="complex64")


SPECTRAL = {  # op -> (out shape, out dtype, attrs, extra nodes, inputs, numpy reference of X)
    "fft": ([None, 5, 4], "complex64", {"function": "rfft"}, [], None, np.fft.rfft),
    "real": ([None, 5, 6], "float32", {}, [
        _complex("c"), node("f", "fft", ["c:0"], [None, 5, 6], "complex64", function="fft2")],
        ["f:0"], lambda x: np.fft.fft2(x).real),
    "imag": ([None, 5, 6], "float32", {}, [
        _complex("c"), node("f", "fft", ["c:0"], [None, 5, 6], "complex64", function="ifft")],
        ["f:0"], lambda x: np.fft.ifft(x).imag),
    "complex": ([None, 5, 6], "complex64", {}, [node("r", "relu", ["x:0"], [None, 5, 6])],
                ["x:0", "r:0"], lambda x: x + 1j * np.maximum(x, 0)),
}


@pytest.mark.parametrize("op", sorted(SPECTRAL))
def test_spectral_op(op, tmp_path):
    """Complex tensors between real input and output, or a complex output (rfft)."""
    out_shape, dtype, attrs, extra, inputs, reference = SPECTRAL[op]
    extra = [Node(n.name, n.op, n.inputs, n.outputs, dict(n.attrs), dict(n.weights)) for n in extra]
    ours = run_one_op(tmp_path, op, X, out_shape, attrs=dict(attrs), extra=extra, inputs=inputs,
                      dtype=dtype)
    expected = reference(X).astype(dtype)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


TESTED = {"attention", "position_embedding", "expand_as", *CASES, *SPECTRAL} - {"cast_float32"}
