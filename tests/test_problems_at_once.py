"""`to-ir` lists every problem in one run: op types without a handler and ops in a form
codegen refuses, with node names, before anything is written. Also: one-pixel symmetric
mirror padding converts (edge replication), a rank-4 output is verified in TF's layout."""

from __future__ import annotations

import numpy as np
from conftest import assert_clean_error, codegen

from codegen.frontends.tensorflow.compat import import_tf


def write_graph(path, build) -> None:
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 3], name="input")
        h = tf.nn.conv2d(x, tf.constant(np.ones((1, 1, 3, 3), np.float32) * 0.3), 1, "SAME")
        tf.identity(build(tf, h), name="output")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def test_every_problem_at_once(tmp_path):
    def build(tf, h):
        wide = tf.roll(h, tf.cast(tf.reduce_max(h), tf.int32), 1)  # refused: run-time shift
        shrunk = tf.split(h, [1, -1], axis=0)[1]  # refused: -1 of the unknown batch size
        summed = tf.math.zeta(h, 3.0) + tf.math.cumprod(h, axis=2)  # no handlers
        return (tf.reduce_mean(wide, [1, 2]) + tf.reduce_mean(shrunk, [0, 1])
                + tf.reduce_mean(summed, [1, 2]))

    write_graph(tmp_path / "m.pb", build)
    result = codegen("to-ir", tmp_path / "m.pb", "--dst-node", "output", "-o", tmp_path / "ir")
    assert_clean_error(result, 4, "Zeta x1", "Cumprod x1", "2 node(s) in a form it refuses",
                       "roll by a shift", "split sizes with a -1")
    assert not (tmp_path / "ir").exists()

    # inspect, given the output, lists the same problems and the ops on the value path
    result = codegen("inspect", tmp_path / "m.pb", "--dst-node", "output")
    assert_clean_error(result, 4, "Zeta x1", "2 node(s) in a form it refuses")
    value_path = result.stdout.split("ops on the value path of output")[1]
    assert "Zeta: 1" in value_path and "Const" not in value_path.split("to-ir would")[0]


def test_one_pixel_symmetric_pad_and_a_rank4_output(tmp_path):
    write_graph(tmp_path / "m.pb", lambda tf, h: tf.raw_ops.MirrorPad(
        input=h, paddings=[[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC"))
    assert codegen("to-ir", tmp_path / "m.pb", "--dst-node", "output",
                   "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    assert 'mode="replicate"' in (tmp_path / "model" / "model.py").read_text()
    result = codegen("verify", tmp_path / "m.pb", "--dst-node", "output", tmp_path / "model")
    assert result.returncode == 0 and "output [4, 8, 8, 3]" in result.stdout, result.stdout
