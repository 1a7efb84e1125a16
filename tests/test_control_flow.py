"""A while loop that is not a recognised layer is reported, never a hang.

TF1 graphs (and TF2 functions once frozen) write loops as a cycle of Enter / Merge /
Switch / NextIteration / Exit ops. Walking such a graph used to loop forever in `to-ir`
(an RNN left it running at 1.7 GB and growing); now the loop is named and nothing is
written.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_clean_error, codegen

from codegen.frontends.tensorflow.compat import import_tf


@pytest.mark.parametrize("version", ["v1 (Enter/Merge cycle)", "v2 (While op)"])
def test_while_loop_is_reported_not_a_hang(tmp_path, version):
    tf = import_tf()
    from tensorflow.python.ops import control_flow_util

    saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = version.startswith("v2")
    try:
        graph = tf.Graph()
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
            w = tf.constant(np.eye(4, dtype=np.float32) * 0.5)
            _, h = tf.compat.v1.while_loop(lambda i, h: i < 3,
                                           lambda i, h: (i + 1, tf.tanh(h @ w)),
                                           [tf.constant(0), x], name="rnn")
            tf.identity(h, name="output")
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved
    ops = {op.type for op in graph.get_operations()}
    assert ("NextIteration" in ops) == version.startswith("v1")
    (tmp_path / "loop.pb").write_bytes(graph.as_graph_def().SerializeToString())
    result = codegen("to-ir", tmp_path / "loop.pb", "--dst-node", "output", "-o", tmp_path / "ir")
    assert_clean_error(result, 4, "while loop", "rnn")
    assert not (tmp_path / "ir").exists()
    result = codegen("inspect", tmp_path / "loop.pb")
    assert "Traceback" not in result.stderr, result.stderr
