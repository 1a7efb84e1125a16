"""Every one-input elementwise TF op with a handler converts exactly, in NCHW.

The graph is conv -> op -> output, so the op sits on an NCHW tensor in the generated model
(a forgotten layout class shows as permutes around it, or as wrong numbers). The list of
ops comes from the handler registry and the catalogue: a new activation is tested here
without another line.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from conftest import load_generated, relative_error

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.handlers import load_handlers
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.resources import op_catalogue

POSITIVE = {"Rsqrt", "Sqrt", "Log", "Log1p", "Lgamma", "Digamma"}  # defined for x > 0: fed |conv| + 0.1
UNIT = {"Asin", "Acos", "Atanh", "Erfinv"}  # defined in (-1, 1): fed 0.9 tanh(conv) (steep near 1)
ABOVE_ONE = {"Acosh"}  # fed |conv| + 1.1
PROBABILITY = {"Ndtri"}  # fed 0.5 + 0.45 tanh(conv)


def unary_tf_ops() -> list[str]:
    catalogue = op_catalogue()
    return sorted(h.tf_op for h in load_handlers().values()
                  if catalogue[h.ir_op]["layout"] == "elementwise" and "form" in catalogue[h.ir_op]
                  and h.tf_op not in ("LeakyRelu", "ComplexAbs", "LogicalNot", "Invert"))  # LeakyRelu takes
    # an alpha: tested with Keras; ComplexAbs takes a complex tensor: tested in
    # test_spectral.py; LogicalNot and Invert take booleans / integers: in test_op_matrix.py


@pytest.mark.parametrize("tf_op", unary_tf_ops())
def test_unary_op_matches_tensorflow(tf_op, tmp_path):
    tf = import_tf()
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 5, 5, 3], name="input")
        kernel = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32))
        h = tf.nn.conv2d(x, kernel, 1, "SAME")
        if tf_op in POSITIVE:
            h = tf.abs(h) + 0.1
        if tf_op in UNIT:
            h = 0.9 * tf.tanh(h)
        if tf_op in ABOVE_ONE:
            h = tf.abs(h) + 1.1
        if tf_op in PROBABILITY:
            h = 0.5 + 0.45 * tf.tanh(h)
        function = getattr(tf.raw_ops, tf_op)
        argument = next(iter(inspect.signature(function).parameters))
        tf.identity(function(**{argument: h}), name="output")
    (tmp_path / "op.pb").write_bytes(graph.as_graph_def().SerializeToString())
    # in this process (the command line's own exit codes are tested in test_bad_inputs.py)
    to_ir(tmp_path / "op.pb", None, ["output"], tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    assert "permute" not in source, source  # the op follows the NCHW layout

    images = rng.uniform(-2, 2, (2, 5, 5, 3)).astype(np.float32)
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run("output:0", {"input:0": images})
    model = load_generated(tmp_path / "model").load_model()
    with torch.no_grad():
        ours = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    if expected.dtype == bool or not np.abs(expected).any():  # IsNan, ...; ZerosLike: no scale
        assert np.array_equal(ours.transpose(0, 2, 3, 1), expected)
        return
    assert relative_error(ours.transpose(0, 2, 3, 1), expected) < 1e-5
