"""The slicing IR ops (unbind, split, index, roll, broadcast_to) without TensorFlow: an IR
graph written by hand on an NHWC image [2, 4, 5, 3] (so the layout pass moves their axes),
built, run, and compared with numpy. A many-output op is read through a concat of its
outputs in reverse order."""

from __future__ import annotations

import numpy as np
import pytest
from test_ir_ops import images, run_one_op

from codegen.ir.graph import Node, TensorInfo

TESTED = {"unbind", "split", "index", "roll", "broadcast_to"}

SINGLE = [  # op, attrs, reference on NHWC x [2, 4, 5, 3], output shape
    ("index", {"items": [[None, None, 1], 1, [None, None, 2], [0, 2, 1]]},
     lambda x: x[:, 1, ::2, 0:2], [None, 3, 2]),
    ("index", {"items": [[None, None, 1], [1, 3, 1], [None, None, 1], 0]},
     lambda x: x[..., 1:3, :, 0], [None, 2, 5]),
    ("index", {"items": [[None, None, 1], None, [None, None, 1], [None, None, 1], -1]},
     lambda x: x[:, None, ..., -1], [None, 1, 4, 5]),
    ("roll", {"shifts": [1, -2], "axes": [1, 3]}, lambda x: np.roll(x, (1, -2), (1, 3)),
     [None, 4, 5, 3]),
    ("broadcast_to", {"shape": [2, 4, 5, 3]}, lambda x: np.broadcast_to(x, (2, 4, 5, 3)),
     [2, 4, 5, 3]),
]


@pytest.mark.parametrize("op, attrs, reference, shape", SINGLE,
                         ids=[f"{s[0]}-{i}" for i, s in enumerate(SINGLE)])
def test_slicing_op(tmp_path, op, attrs, reference, shape):
    x = images(2, 4, 5, 3)
    if op == "broadcast_to":
        x = x[:, :1, :, :1].copy()
    np.testing.assert_array_equal(run_one_op(tmp_path, op, x, shape, attrs=attrs), reference(x))


MANY = [  # op, attrs, the outputs' shapes (TF's), reference parts, concat axis
    ("unbind", {"axis": 3}, [[None, 4, 5]] * 3, lambda x: [x[..., i] for i in range(3)], 2),
    ("unbind", {"axis": 1}, [[None, 5, 3]] * 4, lambda x: [x[:, i] for i in range(4)], 1),
    ("split", {"axis": 2, "chunks": 2, "sizes": [2, 3]}, [[None, 4, 2, 3], [None, 4, 3, 3]],
     lambda x: np.split(x, [2], 2), 2),
    ("split", {"axis": 3, "chunks": 3}, [[None, 4, 5, 1]] * 3, lambda x: np.split(x, 3, 3), 3),
]


@pytest.mark.parametrize("op, attrs, shapes, reference, axis", MANY,
                         ids=[f"{s[0]}-{s[1]['axis']}" for s in MANY])
def test_many_output_op(tmp_path, op, attrs, shapes, reference, axis):
    x = images(2, 4, 5, 3)
    parts = Node("parts", op, ["x:0"], [TensorInfo(s) for s in shapes], attrs=attrs)
    expected = np.concatenate(reference(x)[::-1], axis)
    ours = run_one_op(tmp_path, "concat", x, [None, *expected.shape[1:]], extra=[parts],
                      inputs=[f"parts:{i}" for i in reversed(range(len(shapes)))],
                      attrs={"axis": axis})
    np.testing.assert_array_equal(ours, expected)
