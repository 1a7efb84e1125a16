"""The single-op matrix of the counting, partition, argmax-pooling and HSV ops
(tests/op_matrix.py's harness): Bincount, DenseBincount, DynamicPartition, DynamicStitch,
ParallelDynamicStitch, MaxPoolWithArgmax (both outputs, through the NCHW layout pass),
AdjustHue, AdjustSaturation and the deprecated PlaceholderV2, each converted from a real TF
graph and compared with TF (1e-5 for floats, exact for integers and booleans, same dtype)."""

from __future__ import annotations

import numpy as np
import pytest
from op_matrix import Case, Input, check, compare, refusal, run_ours

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()
raw = tf.raw_ops

IDS = Input((12,), "int32", "shift")  # 0..7
IDS2 = Input((3, 6), "int32", "shift")
IDS64 = Input((10,), "int64", "shift")
W = Input((12,))
W2 = Input((3, 6))


def empty(dtype=tf.float32):
    return tf.zeros([0], dtype)


BINCOUNT = [
    Case("Bincount-counts", lambda i: raw.Bincount(arr=i, size=8, weights=empty()), (IDS,)),
    Case("Bincount-size_drops_values", lambda i: raw.Bincount(arr=i, size=5, weights=empty()),
         (IDS,)),
    Case("Bincount-larger_size", lambda i: raw.Bincount(arr=i, size=11, weights=empty()),
         (IDS,)),
    Case("Bincount-weights", lambda i, w: raw.Bincount(arr=i, size=6, weights=w), (IDS, W)),
    Case("Bincount-int32_weights", lambda i, w: raw.Bincount(arr=i, size=8, weights=w),
         (IDS, Input((12,), "int32", "small"))),
    Case("Bincount-int_counts", lambda i: raw.Bincount(arr=i, size=8,
                                                       weights=empty(tf.int32)), (IDS,)),
    Case("Bincount-matrix_flat", lambda i: raw.Bincount(arr=i, size=7, weights=empty()),
         (IDS2,)),
    Case("Bincount-matrix_weights_float64", lambda i, w: raw.Bincount(
        arr=i, size=8, weights=tf.cast(w, tf.float64)), (IDS2, W2)),
    Case("DenseBincount-vector", lambda i: raw.DenseBincount(
        input=i, size=8, weights=empty(tf.int32)), (IDS,)),
    Case("DenseBincount-vector_weights", lambda i, w: raw.DenseBincount(
        input=i, size=6, weights=w), (IDS, W)),
    Case("DenseBincount-binary", lambda i: raw.DenseBincount(
        input=i, size=8, weights=empty(), binary_output=True), (IDS,)),
    Case("DenseBincount-rows", lambda i: raw.DenseBincount(
        input=i, size=8, weights=empty(tf.int32)), (IDS2,)),
    Case("DenseBincount-rows_weights", lambda i, w: raw.DenseBincount(
        input=i, size=5, weights=w), (IDS2, W2)),
    Case("DenseBincount-rows_binary_int64", lambda i: raw.DenseBincount(
        input=i, size=8, weights=empty(tf.int64), binary_output=True), (IDS2,)),
    Case("DenseBincount-int64_ids", lambda i: raw.DenseBincount(
        input=i, size=9, weights=empty()), (IDS64,)),
    Case("DenseBincount-binary_ignores_weights", lambda i, w: raw.DenseBincount(
        input=i, size=8, weights=w, binary_output=True), (IDS2, W2)),
    Case("DenseBincount-run_time_size", lambda i, n: raw.DenseBincount(
        input=i, size=tf.reduce_max(n) + 3, weights=empty(tf.int32)),
        (IDS, Input((2,), "int32", "shift"))),
    Case("bincount-api_max_plus_one", lambda i: tf.math.bincount(i), (IDS,)),
    Case("bincount-api_min_max_pinned", lambda i: tf.math.bincount(i, minlength=5, maxlength=5),
         (IDS,)),
    Case("bincount-api_minlength", lambda i: tf.math.bincount(i, minlength=10), (IDS,)),
    Case("bincount-api_weights_maxlength", lambda i, w: tf.math.bincount(i, w, maxlength=4),
         (IDS, W)),
    Case("bincount-api_rows_binary", lambda i: tf.math.bincount(
        i, minlength=8, maxlength=8, axis=-1, binary_output=True), (IDS2,)),
    Case("bincount-api_rows_int64", lambda i: tf.math.bincount(i, axis=-1, dtype=tf.int64),
         (IDS2,)),
]

DATA = Input((6, 4))
IMAGE = Input((2, 6, 7, 3))
PARTS = Input((6,), "int32", "shift")


def partition(count, output, fold=None):
    fold = fold or count
    return lambda x, p: tf.dynamic_partition(x, p % fold, count)[output]


PARTITION = [
    Case("DynamicPartition-first", partition(3, 0), (DATA, PARTS)),
    Case("DynamicPartition-last", partition(3, 2), (DATA, PARTS)),
    Case("DynamicPartition-empty_part", partition(4, 3, 3), (DATA, PARTS)),
    Case("DynamicPartition-one", partition(1, 0), (DATA, PARTS)),
    Case("DynamicPartition-int32_data", partition(2, 1),
         (Input((6, 2, 3), "int32", "small"), PARTS)),
    Case("DynamicPartition-2d_partitions", lambda x, p: tf.dynamic_partition(x, p % 2, 2)[1],
         (Input((3, 4, 2)), Input((3, 4), "int32", "shift"))),
    Case("DynamicPartition-vector_bool", partition(2, 0), (Input((6,), "bool"), PARTS)),
    Case("DynamicPartition-image_rows", lambda x, p: tf.dynamic_partition(x, p % 2, 2)[0],
         (IMAGE, Input((2, 6), "int32", "shift"))),
    Case("DynamicPartition-sum_of_parts", lambda x, p: tf.reduce_sum(
        tf.dynamic_partition(x, p % 2, 2)[0], 0) - tf.reduce_sum(
        tf.dynamic_partition(x, p % 2, 2)[1], 0), (DATA, PARTS)),
]


def ids(values):
    return tf.constant(values, tf.int32)


STITCH = [
    Case("DynamicStitch-two", lambda a, b: tf.dynamic_stitch(
        [ids([0, 2, 4]), ids([1, 3])], [a, b]), (Input((3, 4)), Input((2, 4)))),
    Case("DynamicStitch-repeated_later_wins", lambda a, b: tf.dynamic_stitch(
        [ids([0, 1, 2]), ids([1, 2])], [a, b]), (Input((3,)), Input((2,)))),
    Case("DynamicStitch-repeated_within", lambda a: tf.dynamic_stitch(
        [ids([1, 0, 1, 2])], [a]), (Input((4, 2)),)),
    Case("DynamicStitch-2d_indices", lambda a, b: tf.dynamic_stitch(
        [ids([[0, 3], [5, 1]]), ids([2, 4])], [a, b]), (Input((2, 2, 3)), Input((2, 3)))),
    Case("DynamicStitch-scalar_index", lambda a, b: tf.dynamic_stitch(
        [ids(1), ids([0, 2])], [a, b]), (Input((3,)), Input((2, 3)))),
    Case("DynamicStitch-int32", lambda a, b: tf.dynamic_stitch(
        [ids([1, 0]), ids([2])], [a, b]),
         (Input((2, 3), "int32", "small"), Input((1, 3), "int32", "small"))),
    Case("DynamicStitch-partition_roundtrip", lambda x, p: tf.dynamic_stitch(
        tf.dynamic_partition(tf.range(6), p % 3, 3), tf.dynamic_partition(x, p % 3, 3)),
         (DATA, PARTS)),
    Case("DynamicStitch-run_time_indices", lambda a, i: tf.dynamic_stitch([i % 4], [a]),
         (Input((5, 2)), Input((5,), "int32", "shift"))),
    Case("DynamicStitch-gap_rows_zero", lambda a, b: tf.dynamic_stitch(
        [ids([0, 5]), ids([2])], [a, b]), (Input((2, 3)), Input((1, 3)))),
    Case("ParallelDynamicStitch-gap_rows_zero", lambda a: raw.ParallelDynamicStitch(
        indices=[ids([4, 1])], data=[a]), (Input((2, 3), "int32", "small"),)),
    Case("ParallelDynamicStitch-two", lambda a, b: raw.ParallelDynamicStitch(
        indices=[ids([0, 2, 4]), ids([1, 3])], data=[a, b]), (Input((3, 4)), Input((2, 4)))),
    Case("ParallelDynamicStitch-2d", lambda a, b: raw.ParallelDynamicStitch(
        indices=[ids([[0, 3], [5, 1]]), ids([2, 4])], data=[a, b]),
         (Input((2, 2, 3)), Input((2, 3)))),
]

def argmax_pool(output, ksize=2, strides=2, padding="VALID", include_batch=False,
                dtype=tf.int64):
    return lambda x: tf.nn.max_pool_with_argmax(
        x, ksize, strides, padding, output_dtype=dtype,
        include_batch_in_index=include_batch)[output]


ARGMAX = [
    Case("MaxPoolWithArgmax-values", argmax_pool(0), (IMAGE,)),
    Case("MaxPoolWithArgmax-argmax", argmax_pool(1), (IMAGE,)),
    Case("MaxPoolWithArgmax-batch_index", argmax_pool(1, include_batch=True), (IMAGE,)),
    Case("MaxPoolWithArgmax-int32", argmax_pool(1, dtype=tf.int32), (IMAGE,)),
    Case("MaxPoolWithArgmax-same_3x3_s2", argmax_pool(1, 3, 2, "SAME"), (IMAGE,)),
    Case("MaxPoolWithArgmax-same_values", argmax_pool(0, 3, 2, "SAME"), (IMAGE,)),
    Case("MaxPoolWithArgmax-same_stride1", argmax_pool(1, 3, 1, "SAME", True), (IMAGE,)),
    Case("MaxPoolWithArgmax-rect", argmax_pool(1, [2, 3], [1, 2]), (Input((1, 5, 8, 4)),)),
    Case("MaxPoolWithArgmax-after_reshape", lambda x: tf.nn.max_pool_with_argmax(
        tf.reshape(x, [2, 6, 7, 3]), 3, 2, "SAME", include_batch_in_index=True)[1],
         (Input((2, 126)),)),
    Case("MaxPoolWithArgmax-float64", argmax_pool(1, 2, 1), (Input((1, 4, 5, 2), "float64"),)),
    Case("MaxPoolWithArgmax-both", lambda x: tf.cast(tf.nn.max_pool_with_argmax(
        x, 2, 2, "VALID")[1], tf.float32) + tf.nn.max_pool_with_argmax(x, 2, 2, "VALID")[0],
         (IMAGE,)),
]

PIXELS = Input((2, 5, 6, 3), "float32", "probability")
HSV = [
    Case("AdjustHue-quarter", lambda x: tf.image.adjust_hue(x, 0.25), (PIXELS,)),
    Case("AdjustHue-negative", lambda x: tf.image.adjust_hue(x, -0.4), (PIXELS,)),
    Case("AdjustHue-full_turn", lambda x: tf.image.adjust_hue(x, 1.0), (PIXELS,)),
    Case("AdjustHue-one_image", lambda x: tf.image.adjust_hue(x, 0.1),
         (Input((4, 5, 3), "float32", "probability"),)),
    Case("AdjustHue-gray_and_edges", lambda x: tf.image.adjust_hue(tf.concat(
        [x, tf.zeros_like(x), tf.ones_like(x), tf.tile(x[..., :1], [1, 1, 1, 3])], 1), 0.3),
         (PIXELS,)),
    Case("AdjustHue-delta_input", lambda x, d: tf.image.adjust_hue(x, d[0]),
         (PIXELS, Input((1,), "float32", "unit"))),
    Case("AdjustHue-after_reshape", lambda x: tf.image.adjust_hue(tf.reshape(x, [2, 5, 6, 3]),
                                                                  0.7), (Input((2, 90)),)),
    Case("AdjustHue-unbounded", lambda x: tf.image.adjust_hue(x, 0.6), (IMAGE,)),
    Case("AdjustSaturation-double", lambda x: tf.image.adjust_saturation(x, 2.0), (PIXELS,)),
    Case("AdjustSaturation-half", lambda x: tf.image.adjust_saturation(x, 0.5), (PIXELS,)),
    Case("AdjustSaturation-zero", lambda x: tf.image.adjust_saturation(x, 0.0), (PIXELS,)),
    Case("AdjustSaturation-one_image", lambda x: tf.image.adjust_saturation(x, 1.7),
         (Input((4, 5, 3), "float32", "probability"),)),
    Case("AdjustSaturation-factor_input", lambda x, f: tf.image.adjust_saturation(x, f[0]),
         (PIXELS, Input((1,), "float32", "positive"))),
    Case("AdjustSaturation-gray_and_edges", lambda x: tf.image.adjust_saturation(tf.concat(
        [x, tf.zeros_like(x), tf.ones_like(x), tf.tile(x[..., :1], [1, 1, 1, 3])], 1), 3.0),
         (PIXELS,)),
    Case("AdjustSaturation-after_conv", lambda x: tf.image.adjust_saturation(tf.nn.conv2d(
        x, tf.reshape(tf.range(27.0) / 27.0, [3, 3, 3, 1]) * tf.ones([1, 1, 1, 3]), 1, "SAME"),
        1.5), (PIXELS,)),
]

CASES = BINCOUNT + PARTITION + STITCH + ARGMAX + HSV


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_converts_like_tf(case):
    check(case)


REFUSED = [
    Case("AdjustHue-float16", lambda x: raw.AdjustHue(images=tf.cast(x, tf.float16), delta=0.2),
         (PIXELS,)),
    Case("AdjustSaturation-not_rgb", lambda x: raw.AdjustSaturation(
        images=tf.concat([x, x[..., :1]], -1), scale=2.0), (PIXELS,)),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.id)
def test_refused_with_a_reason(case):
    message = refusal(case)
    assert case.id.split("-")[0] in message


@pytest.mark.parametrize("shape, dtype", [((2, 3), "float32"), ((4,), "int32"),
                                          ((1, 5, 6, 3), "float32")])
def test_placeholder_v2_is_a_model_input(tmp_path, shape, dtype):
    """A GraphDef of version < 23 (TF2 no longer writes PlaceholderV2, so it is made by
    hand): its PlaceholderV2 is the model's input, as a Placeholder."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.as_dtype(dtype), shape, name="input0")
        tf.identity(tf.nn.relu(x) * 2 + tf.reduce_max(x), name="output")
    graph_def = graph.as_graph_def()
    graph_def.versions.producer = 21
    for node in graph_def.node:
        if node.op == "Placeholder":
            node.op = "PlaceholderV2"
    (tmp_path / "op.pb").write_bytes(graph_def.SerializeToString())
    array = (np.random.default_rng(3).normal(0, 3, shape)).astype(dtype)
    old = tf.Graph()
    with old.as_default():
        tf.import_graph_def(graph_def, name="")
        assert old.get_operation_by_name("input0").type == "PlaceholderV2"
        with tf.compat.v1.Session(graph=old) as session:
            expected = session.run("output:0", {"input0:0": array})
    compare(run_ours(tmp_path / "op.pb", [array], tmp_path), expected)


@pytest.fixture(autouse=True)
def frozen_graphs(monkeypatch):
    """These cases are written as frozen GraphDefs (half a SavedModel's time; the formats
    convert alike, tests/test_op_matrix.py covers SavedModels)."""
    import op_matrix

    monkeypatch.setattr(op_matrix, "FORMAT", "graphdef")


def test_a_size_read_from_values_stays_unknown(tmp_path):
    """tf.math.bincount(axis=-1) of a batch of unknown size: its length is max + 1 of the
    values, which a sample run on zeros would have fixed at 1 (converter._complete_shapes);
    the IR keeps it unknown and the model follows the values."""
    import json

    import torch

    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.int32, [None, 6], name="input0")
        tf.identity(tf.math.bincount(x, axis=-1) * 2, name="output")
    (tmp_path / "op.pb").write_bytes(graph.as_graph_def().SerializeToString())
    to_ir(tmp_path / "op.pb", None, ["output"], tmp_path / "ir", quiet=True)
    nodes = json.loads((tmp_path / "ir" / "graph.json").read_text())["nodes"]
    assert [node["outputs"][0]["shape"] for node in nodes if node["op"] == "bincount"] == \
        [[None, None]]
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    model = import_generated(tmp_path / "model").load_model()
    ids = np.array([[0, 4, 4, 1, 0, 0], [2, 2, 2, 2, 2, 2]], np.int32)
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run("output:0", {"input0:0": ids})
    compare(model(torch.from_numpy(ids)).numpy(), expected)
