"""Per-op tests without TensorFlow for the indexing, scatter, segment, sort and matrix ops:
an IR graph the test writes (NHWC images where the op may meet one, so the NCHW layout
pass runs), built and run, compared with a numpy reference (tests/test_ir_ops.py counts
these in)."""

from __future__ import annotations

import numpy as np
import pytest
from test_ir_ops import run_one_op

from codegen.ir.graph import Node, TensorInfo

RNG = np.random.default_rng(3)
X = RNG.uniform(-1, 1, (2, 4, 6, 8)).astype(np.float32)  # an NHWC image


def const(name: str, value: np.ndarray) -> Node:
    return Node(name, "constant", [], [TensorInfo(list(value.shape), str(value.dtype))],
                attrs={"_value": value}, weights={"value": f"{name}/value"})


def node(name: str, op: str, inputs: list[str], shape: list, out="float32", **attrs) -> Node:
    return Node(name, op, inputs, [TensorInfo(shape, out)], attrs=attrs)


# the rows first ([4, N, 6, 8]): constants of a fixed size index them whatever the batch
ROWS_FIRST = node("rows", "transpose", ["x:0"], [4, None, 6, 8], perm=[1, 0, 2, 3])
SEGMENTS = np.array([2, 0, 0, 3], np.int32)  # segment 1 is empty


def _segment_max(x):
    rows = np.moveaxis(x, 1, 0)
    out = np.full((5, *rows.shape[1:]), -5.0, np.float32)
    np.maximum.at(out, SEGMENTS, rows)
    return out


def _set_diagonal(x):
    out = x.copy()
    out[..., np.arange(6), np.arange(6)] *= -1
    return out


CASES = [  # op, attrs, extra nodes, inputs, reference on X, output shape
    ("gather", {"axis": 3, "batch_dims": 0}, [const("ids", np.array([7, 0, 3], np.int32))],
     ["x:0", "ids:0"], lambda x: x[..., [7, 0, 3]], [None, 4, 6, 3]),
    ("gather", {"axis": 2, "batch_dims": 1, "rank": 4, "ids_rank": 2},
     [ROWS_FIRST, const("ids", np.array([[5, 0], [1, 1], [2, 4], [3, 0]], np.int32))],
     ["rows:0", "ids:0"],
     lambda x: np.stack([np.moveaxis(x, 1, 0)[i][:, ids] for i, ids in
                         enumerate([[5, 0], [1, 1], [2, 4], [3, 0]])]), [4, None, 2, 8]),
    ("gather_nd", {}, [const("ids", np.array([[0, 1, 2], [0, 3, 5]], np.int32))],
     ["x:0", "ids:0"], lambda x: x[[0, 0], [1, 3], [2, 5]], [2, 8]),
    ("segment_reduce", {"reduce": "amax", "num_segments": 5, "ids_rank": 1, "rank": 4,
                        "empty": -5.0}, [ROWS_FIRST, const("ids", SEGMENTS)],
     ["rows:0", "ids:0"], _segment_max, [5, None, 6, 8]),
    ("diagonal", {"offset": 1}, [], None, lambda x: np.diagonal(x, 1, 2, 3), [None, 4, 5]),
    ("set_diagonal", {"offset": 0}, [node("diag", "diagonal", ["x:0"], [None, 4, 6], offset=0),
                                     node("minus", "neg", ["diag:0"], [None, 4, 6])],
     ["x:0", "minus:0"], _set_diagonal, [None, 4, 6, 8]),
    ("band_part", {"lower": 1, "upper": 0}, [], None,
     lambda x: x * np.tril(np.triu(np.ones((6, 8)), -1), 0), [None, 4, 6, 8]),
    ("lrn", {"depth_radius": 2, "bias": 1.0, "alpha": 0.1, "beta": 0.75, "axis": 3}, [], None,
     lambda x: x / (1.0 + 0.1 * np.stack([(x[..., max(0, c - 2):c + 3] ** 2).sum(-1)
                                          for c in range(8)], -1)) ** 0.75, [None, 4, 6, 8]),
]


@pytest.mark.parametrize("op, attrs, extra, inputs, reference, shape", CASES,
                         ids=[case[0] for case in CASES])
def test_on_images(tmp_path, op, attrs, extra, inputs, reference, shape):
    ours = run_one_op(tmp_path, op, X, shape, attrs=attrs, extra=extra, inputs=inputs)
    np.testing.assert_allclose(ours, reference(X), rtol=1e-5, atol=1e-6)


def test_tensor_scatter_max_on_an_image(tmp_path):
    """scatter_reduce over the rows of an image (moved first), the updates minus other rows."""
    updates = [node("picked", "gather", ["rows:0", "picks:0"], [3, None, 6, 8], axis=0,
                    batch_dims=0), node("minus", "neg", ["picked:0"], [3, None, 6, 8])]
    extra = [ROWS_FIRST, const("picks", np.array([2, 0, 2], np.int32)),
             const("ids", np.array([[1], [3], [1]], np.int32)), *updates]
    attrs = {"reduce": "max", "depth": 1, "batch": 1, "strides": [1], "rest": 3}
    ours = run_one_op(tmp_path, "scatter_nd", X, [4, None, 6, 8], attrs=attrs, extra=extra,
                      inputs=["rows:0", "ids:0", "minus:0"])
    expected = np.moveaxis(X, 1, 0).copy()
    np.maximum.at(expected, [1, 3, 1], -expected[[2, 0, 2]])
    np.testing.assert_array_equal(ours, expected)


def test_sort_on_an_image(tmp_path):
    """Both outputs of a sort over the channels follow the layout (the indices read here)."""
    sort = Node("sort", "sort", ["x:0"], [TensorInfo([None, 4, 6, 8]),
                                          TensorInfo([None, 4, 6, 8], "int64")],
                attrs={"axis": 3, "descending": True})
    ours = run_one_op(tmp_path, "cast", X, [None, 4, 6, 8], attrs={"dtype": "float32"},
                      extra=[sort], inputs=["sort:1"])
    np.testing.assert_array_equal(ours, np.argsort(-X, axis=3, kind="stable"))


def test_nonzero_and_matrix_diag(tmp_path):
    x = np.where(X[:, :, :, 0] > 0, X[:, :, :, 0], 0).astype(np.float32)  # [2, 4, 6]
    ours = run_one_op(tmp_path / "nonzero", "nonzero", x, [None, 3], dtype="int64")
    np.testing.assert_array_equal(ours, np.argwhere(x))
    made = run_one_op(tmp_path / "diag", "matrix_diag", x, [None, 4, 6, 6], attrs={"offset": 0})
    np.testing.assert_array_equal(made, x[..., None] * np.eye(6, dtype=np.float32))


TESTED = {case[0] for case in CASES} | {"scatter_nd", "sort", "nonzero", "matrix_diag"}
