"""Per-op tests without TensorFlow for sizes known only at run time (codegen/ir/sizes.py):
an IR graph the test writes (shape -> size_item / size_slice / sizes / size arithmetic ->
an op that reads them), built and run, compared with a numpy reference at the input's
size; and the validator's check that a size reaches only ops that read sizes."""

from __future__ import annotations

import numpy as np
import pytest
from test_ir_ops import run_one_op

from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.validate import semantic_problems

X = np.random.default_rng(2).normal(0, 1, (2, 5, 6)).astype(np.float32)


def size(name: str, op: str, inputs: list[str], shape: list, **attrs) -> Node:
    return Node(name, op, inputs, [TensorInfo(shape, "int32", size=True)], attrs=attrs)


SHAPE = size("shape", "shape", ["x:0"], [3])
BATCH = size("batch", "size_item", ["shape:0"], [], index=0)
LENGTH = size("length", "size_item", ["shape:0"], [], index=1)
DOUBLE = size("double", "mul", ["length:0", "two:0"], [])
TWO = Node("two", "scalar", [], [TensorInfo([], "int32")], attrs={"value": 2})

def _band(lower: int, upper: int) -> np.ndarray:
    """TF's MatrixBandPart mask of X's last two axes: i - j <= lower and j - i <= upper."""
    i, j = np.indices(X.shape[-2:])
    return ((i - j <= lower) & (j - i <= upper)).astype(np.float32)


CASES = {  # op -> (out shape, out dtype, attrs, extra nodes, inputs, numpy reference of X)
    "range": ([None], "int64", {"start": 0, "limit": None, "delta": 1, "dtype": "int64",
                                "device": True},
              [SHAPE, LENGTH], ["length:0", "x:0"], lambda x: np.arange(x.shape[1])),
    "range_step": ([None], "int32", {"start": 1, "limit": None, "delta": 2, "dtype": "int32",
                                     "device": False},
                   [SHAPE, LENGTH, TWO, DOUBLE], ["double:0"],
                   lambda x: np.arange(1, 2 * x.shape[1], 2, dtype=np.int32)),
    "fill": ([None, None, 3], "float32", {"value": 0.5, "dtype": "float32", "device": True},
             [SHAPE, BATCH, LENGTH, size("target", "sizes", ["batch:0", "length:0"], [3],
                                         parts=["item", "item", 3])],
             ["target:0", "x:0"], lambda x: np.full((2, 5, 3), 0.5, np.float32)),
    "tile": ([None, 10, 6], "float32", {"multiples": [1, 2, 1]}, [], None,
             lambda x: np.tile(x, (1, 2, 1))),
    "tile_sizes": ([None, 10, 6], "float32", {},
                   [SHAPE, BATCH, size("m", "sizes", ["batch:0"], [3], parts=[1, "item", 1])],
                   ["x:0", "m:0"], lambda x: np.tile(x, (1, 2, 1))),
    "reshape_to": ([None, None, 2, 3], "float32", {},
                   [SHAPE, size("lead", "size_slice", ["shape:0"], [2], start=None, stop=2,
                                step=1),
                    size("target", "sizes", ["lead:0"], [4], parts=["splat", 2, 3])],
                   ["x:0", "target:0"], lambda x: x.reshape(2, 5, 2, 3)),
    "expand_to": ([3, None, 5, 6], "float32", {},
                     [SHAPE, size("target", "sizes", ["shape:0"], [4], parts=[3, "splat"])],
                     ["x:0", "target:0"], lambda x: np.broadcast_to(x, (3, 2, 5, 6))),
    "repeat_interleave": ([None, 10, 6], "float32", {"repeats": 2, "axis": 1}, [], None,
                          lambda x: np.repeat(x, 2, axis=1)),
    "stack": ([None, 2, 5, 6], "float32", {"axis": 1}, [], ["x:0", "x:0"],
              lambda x: np.stack([x, x], axis=1)),
    "size_tensor": ([], "float32", {"dtype": "float32"},
                    [Node("numel", "numel", ["x:0"], [TensorInfo([], "int32", size=True)])],
                    ["numel:0", "x:0"], lambda x: np.float32(x.size)),
    "slice_to": ([None, 3, 4], "float32", {"begin": [0, 1, 2], "lengths": [None, 3, -1]},
                 [SHAPE, BATCH], ["x:0", "batch:0"], lambda x: x[: x.shape[0], 1:4, 2:]),
    "band_part_sizes": ([None, 5, 6], "float32", {"lower": None, "upper": 2},
                        [SHAPE, size("one", "size_item", ["shape:0"], [], index=0)],
                        ["x:0", "one:0"], lambda x: x * _band(x.shape[0], 2)),
}
# the ops these cases run (tests/test_ir_ops.py counts them in)
TESTED = {"shape", "numel", "size_item", "size_slice", "sizes"} | {
    case.removesuffix("_step").removesuffix("_sizes") for case in CASES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_size_op(case, tmp_path):
    out_shape, dtype, attrs, extra, inputs, reference = CASES[case]
    extra = [Node(n.name, n.op, n.inputs, [TensorInfo(list(i.shape), i.dtype, i.size)
                                           for i in n.outputs], dict(n.attrs)) for n in extra]
    ours = run_one_op(tmp_path, case.removesuffix("_step").removesuffix("_sizes"), X, out_shape,
                      attrs=dict(attrs), extra=extra, inputs=inputs, dtype=dtype)
    expected = reference(X)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    np.testing.assert_array_equal(ours, expected)


def test_a_size_read_by_an_op_of_tensors_is_reported():
    graph = Graph([GraphInput("x", [None, 5], "float32")], [GraphOutput("y", "root:0")],
                  {"shape": Node("shape", "shape", ["x:0"], [TensorInfo([2], "int32", True)]),
                   "root": Node("root", "sqrt", ["shape:0"], [TensorInfo([2], "int32")]),
                   "plain": Node("plain", "shape", ["x:0"], [TensorInfo([2], "int32")])}, {})
    problems = semantic_problems(graph)
    assert any("'root'" in p and "is a size" in p for p in problems), problems
    assert any("'plain'" in p and "must be marked" in p for p in problems), problems
