"""Single-op matrix of the TF ops that are another op in a different form (AddN, BiasAddV1,
Concat, MaxPoolV2, DivNoNan, MatrixDeterminant, EnsureShape), each a tiny TF graph converted
in-process and compared with TF (tests/op_matrix.py)."""

from __future__ import annotations

import pytest
from op_matrix import Case, Input, check

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()
raw = tf.raw_ops

F = Input((2, 5, 4))
IMAGE = Input((2, 6, 8, 3))
INT = Input((3, 4), "int32", "small")
WITH_ZEROS = Input((3, 4), "int32", "shift")  # 0..7: some divisors are 0


def as_float(x):
    return tf.cast(x, tf.float32)


CASES = [
    Case("AddN-2", lambda a, b: tf.math.add_n([a, b]), (F, F)),
    Case("AddN-4", lambda a, b, c, d: tf.math.add_n([a, b, c, d]), (F, F, F, F)),
    Case("AddN-int32", lambda a, b, c: tf.math.add_n([a, b, c]), (INT, INT, INT)),
    Case("AddN-image", lambda x: tf.math.add_n([tf.nn.relu(x), x, x * 2.0]), (IMAGE,)),
    Case("BiasAddV1", lambda x: raw.BiasAddV1(value=x, bias=tf.constant([0.5, -1.0, 2.0, 0.25])),
         (F,)),
    Case("BiasAddV1-image", lambda x: raw.BiasAddV1(value=x, bias=tf.constant([0.5, -1.0, 2.0])),
         (IMAGE,)),
    Case("Concat-axis1", lambda a, b: raw.Concat(concat_dim=1, values=[a, b]), (F, F)),
    Case("Concat-axis-1-int", lambda a, b: raw.Concat(concat_dim=-1, values=[a, b]), (INT, INT)),
    Case("Concat-image-channels", lambda x: raw.Concat(concat_dim=3, values=[x, tf.nn.relu(x)]),
         (IMAGE,)),
    Case("MaxPoolV2-valid", lambda x: raw.MaxPoolV2(input=x, ksize=[1, 2, 2, 1],
                                                    strides=[1, 2, 2, 1], padding="VALID"),
         (IMAGE,)),
    Case("MaxPoolV2-same", lambda x: raw.MaxPoolV2(input=x, ksize=[1, 3, 3, 1],
                                                   strides=[1, 2, 2, 1], padding="SAME"),
         (IMAGE,)),
    Case("DivNoNan", lambda a, b: tf.math.divide_no_nan(as_float(a), as_float(b)),
         (INT, WITH_ZEROS)),
    Case("DivNoNan-broadcast", lambda a, b: tf.math.divide_no_nan(a, as_float(b)[:, :1]),
         (Input((3, 4)), WITH_ZEROS)),
    Case("MatrixDeterminant-2x2", lambda x: tf.linalg.det(x), (Input((4, 2, 2)),)),
    Case("MatrixDeterminant-3x3", lambda x: tf.linalg.det(x), (Input((2, 5, 3, 3)),)),
    Case("Gather-TF1", lambda x, i: raw.Gather(params=x, indices=i % 2), (F, INT)),
    Case("Gather-TF1-table", lambda i: raw.Gather(params=tf.constant(
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 0.5]]), indices=i % 5), (INT,)),
    Case("EnsureShape", lambda x: tf.nn.relu(tf.ensure_shape(x, [2, 5, 4])), (F,)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_alias_op_matches_tf(case):
    check(case)


PROBS = Input((4, 5), kind="probability")
MORE = [
    Case("AdjustContrastv2", lambda x: tf.image.adjust_contrast(x, 1.7), (IMAGE,)),
    Case("AdjustContrastv2-after-conv", lambda x: tf.image.adjust_contrast(
        tf.nn.conv2d(x, tf.constant(np_kernel()), 1, "SAME"), 0.4), (IMAGE,)),
    Case("SoftmaxCrossEntropyWithLogits-loss", lambda x, p: raw.SoftmaxCrossEntropyWithLogits(
        features=x, labels=p / tf.reduce_sum(p, -1, keepdims=True))[0], (Input((4, 5)), PROBS)),
    Case("SoftmaxCrossEntropyWithLogits-backprop",
         lambda x, p: raw.SoftmaxCrossEntropyWithLogits(features=x, labels=p)[1],
         (Input((4, 5)), PROBS)),
    Case("softmax_cross_entropy_with_logits", lambda x, p: tf.nn.softmax_cross_entropy_with_logits(
        labels=p, logits=x), (Input((2, 3, 5)), Input((2, 3, 5), kind="probability"))),
]


def np_kernel():
    import numpy as np

    return np.random.default_rng(2).normal(0, 0.5, (3, 3, 3, 4)).astype("float32")


@pytest.mark.parametrize("case", MORE, ids=[case.id for case in MORE])
def test_composed_op_matches_tf(case):
    check(case)


def _permutation(x):
    """A permutation of range(6) that depends on x (argsort of its first row)."""
    return tf.cast(tf.argsort(x[0]), tf.int32)


SEQUENCES = Input((3, 6, 2))
LENGTHS = Input((3,), "int32", "shift")  # 0..7, clipped to 6 below
IDS = Input((12,), "int32", "shift")  # repeats
TABLE = [
    Case("InvertPermutation", lambda x: tf.math.invert_permutation(_permutation(x)),
         (Input((2, 6)),)),
    Case("ReverseSequence-time", lambda x, n: tf.reverse_sequence(
        x, tf.minimum(n, 6), seq_axis=1, batch_axis=0), (SEQUENCES, LENGTHS)),
    Case("ReverseSequence-batch-last", lambda x, n: tf.reverse_sequence(
        tf.transpose(x, [1, 2, 0]), tf.minimum(n, 6), seq_axis=0, batch_axis=2),
         (SEQUENCES, LENGTHS)),
    Case("ReverseSequence-int64-lengths", lambda x, n: tf.reverse_sequence(
        x, tf.cast(tf.minimum(n, 6), tf.int64), seq_axis=1, batch_axis=0), (SEQUENCES, LENGTHS)),
    Case("Unique-values", lambda i: tf.unique(i).y, (IDS,)),
    Case("Unique-index", lambda i: tf.unique(i).idx, (IDS,)),
    Case("Unique-index-int64", lambda i: tf.unique(i, out_idx=tf.int64).idx, (IDS,)),
    Case("UniqueWithCounts-counts", lambda i: tf.unique_with_counts(i).count, (IDS,)),
    Case("Unique-floats", lambda x: tf.unique(tf.round(x * 2.0)).y, (Input((10,)),)),
]


@pytest.mark.parametrize("case", TABLE, ids=[case.id for case in TABLE])
def test_table_op_matches_tf(case):
    check(case)
