"""Each multi-node pattern (codegen/frontends/tensorflow/rewrites/) on its own: the TF ops
that write it out become one IR op, and the generated model computes what TF computes.
Every rewrite module has a case here (checked by the last test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import codegen, load_generated, relative_error

from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.rewrites import MODULES


def batch_norm(tf, x, rng):
    c = x.shape[-1]
    mean, variance = rng.normal(0, 0.3, c), rng.uniform(0.5, 2, c)
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c)
    return tf.nn.batch_normalization(x, *(tf.constant(v, tf.float32) for v in
                                          (mean, variance, beta, gamma)), 1e-3)


def layer_norm(tf, x, rng):
    """As Keras 3 LayerNormalization writes it: tf.nn.moments, then batch-norm arithmetic."""
    c = x.shape[-1]
    gamma, beta = (tf.constant(v, tf.float32) for v in (rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c)))
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    m = tf.math.rsqrt(variance + 1e-5) * gamma
    return x * m + (-mean * m + beta)


def layer_norm_tf1(tf, x, rng):
    """As tf.contrib.layers.layer_norm lowers (BERT's modeling.py): moments, then
    tf.nn.batch_normalization's x * m + (beta - mean * m)."""
    c = x.shape[-1]
    gamma, beta = (tf.constant(v, tf.float32) for v in (rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c)))
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, 1e-12)


CASES = {  # rewrite module[:variant] -> (TF ops, the IR op it must become)
    "batch_norm": (batch_norm, "batch_norm"),
    "layer_norm": (layer_norm, "layer_norm"),
    "layer_norm:tf1": (layer_norm_tf1, "layer_norm"),
    "swish": (lambda tf, x, rng: x * tf.sigmoid(x), "swish"),
    "gelu": (lambda tf, x, rng: tf.nn.gelu(x, approximate=False), "gelu"),
    "gelu:tanh": (lambda tf, x, rng: tf.nn.gelu(x, approximate=True), "gelu"),  # keras-hub BERT
    "gelu:erf": (lambda tf, x, rng: x * 0.5 * (1.0 + tf.math.erf(x / tf.sqrt(2.0))), "gelu"),  # TF1 BERT
    "hard_swish": (lambda tf, x, rng: x * (tf.nn.relu6(x + 3.0) / 6.0), "hard_swish"),
}


@pytest.mark.parametrize("module", sorted(CASES))
def test_rewrite_becomes_one_ir_op(module, tmp_path):
    tf = import_tf()
    pattern, ir_op = CASES[module]
    rng = np.random.default_rng(3)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6], name="input")
        h = tf.matmul(x, tf.constant(rng.normal(0, 1, (6, 6)), tf.float32))  # a computed input
        tf.identity(pattern(tf, h, rng), name="output")
    (tmp_path / "p.pb").write_bytes(graph.as_graph_def().SerializeToString())
    result = codegen("to-ir", tmp_path / "p.pb", "--dst-node", "output", "-o", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    ops = [node["op"] for node in json.loads((tmp_path / "ir" / "graph.json").read_text())["nodes"]]
    assert ops.count(ir_op) == 1 and ops.count("linear") == 1, ops
    assert len(ops) <= 3, ops  # linear, the pattern, and at most its constant
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0

    images = rng.uniform(-3, 3, (4, 6)).astype(np.float32)
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run("output:0", {"input:0": images})
    with torch.no_grad():
        ours = load_generated(tmp_path / "model").load_model()(torch.from_numpy(images)).numpy()
    assert relative_error(ours, expected) < 1e-5


def test_dilated_conv_becomes_one_conv(tmp_path):
    """SpaceToBatchND -> conv -> BatchToSpaceND (tf.nn.atrous_conv2d): one dilated conv2d."""
    tf = import_tf()
    rng = np.random.default_rng(4)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 9, 9, 3], name="input")
        kernel = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 4)), tf.float32)
        tf.identity(tf.nn.atrous_conv2d(x, kernel, rate=2, padding="SAME"), name="output")
    assert "SpaceToBatchND" in {op.type for op in graph.get_operations()}
    (tmp_path / "d.pb").write_bytes(graph.as_graph_def().SerializeToString())
    assert codegen("to-ir", tmp_path / "d.pb", "--dst-node", "output",
                   "-o", tmp_path / "ir").returncode == 0
    nodes = json.loads((tmp_path / "ir" / "graph.json").read_text())["nodes"]
    assert [n["op"] for n in nodes] == ["conv2d"] and nodes[0]["attrs"]["dilations"] == [2, 2]
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    result = codegen("verify", tmp_path / "d.pb", "--dst-node", "output", tmp_path / "model")
    assert result.returncode == 0, result.stdout + result.stderr


SEQUENCE_CASES = ("tensordot", "einsum_dense", "attention")  # in tests/test_transformers.py


def test_every_rewrite_module_has_a_case():
    modules = {case.partition(":")[0] for case in CASES}  # "module:variant" cases
    elsewhere = ["dilated_conv", *SEQUENCE_CASES, "rnn_outputs",  # rnn_outputs: tests/test_rnn.py
                 "one_hot_embedding",  # tests/test_tf1_bert.py
                 "time_distributed", "time_distributed_reshape",  # test_time_distributed.py
                 "repeat",  # tests/test_image_models.py (Keras 3 nearest UpSampling2D)
                 "conv1d",  # tests/test_keras_conv_models.py (Keras' 1-D layers)
                 "rms_norm",  # tests/test_rms_norm.py (Keras, Llama, Gemma, T5 forms)
                 "rotary", "grouped_attention",  # tests/test_rotary.py (keras-hub decoders)
                 "position_bucket", "alibi"]  # tests/test_t5_buckets.py, tests/test_alibi.py
    assert sorted([*modules, *elsewhere]) == sorted(MODULES)
