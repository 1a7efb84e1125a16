"""The single-op matrix of the indexing and matrix ops (tests/op_matrix.py's harness): gathers
outside an embedding, GatherNd, ScatterNd, TensorScatter*, segment reductions, OneHot, Where,
TopKV2, MatrixDiag / DiagPart / SetDiag / BandPart, MatMul and BatchMatMul of two tensors and
LRN, each converted from a real TF graph and compared with TF (1e-5 for floats, exact for
integers and booleans, same dtype); images go through the NCHW layout pass."""

from __future__ import annotations

import numpy as np
import pytest
from op_matrix import Case, Input, check, refusal

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()
raw = tf.raw_ops

F = Input((4, 5, 6))
IMAGE = Input((2, 5, 6, 8))
I32 = Input((4, 5, 6), "int32", "small")
IDS = Input((3,), "int32", "shift")  # 0..7
IDS2 = Input((2, 3), "int32", "shift")
B = Input((4, 5, 6), "bool")


def ids(values, dtype=tf.int32):
    return tf.constant(values, dtype)


def gather(axis, batch_dims=0):
    return lambda x, i: tf.gather(x, i % 4, axis=axis, batch_dims=batch_dims)


GATHER = [
    Case("GatherV2-axis0-ids_input", gather(0), (F, IDS)),
    Case("GatherV2-axis1-ids_input", gather(1), (F, IDS)),
    Case("GatherV2-axis2-ids_rank2", gather(2), (F, IDS2)),
    Case("GatherV2-axis_neg1", lambda x: tf.gather(x, ids([5, 0, 2]), axis=-1), (F,)),
    Case("GatherV2-const_ids_scalar", lambda x: tf.gather(x, ids(2), axis=1), (F,)),
    Case("GatherV2-int32_params", lambda x: tf.gather(x, ids([[1, 0], [3, 3]]), axis=0), (I32,)),
    Case("GatherV2-int64_ids", lambda x: tf.gather(x, ids([1, 4, 2], tf.int64), axis=1), (F,)),
    Case("GatherV2-bool", lambda x: tf.gather(x, ids([0, 3]), axis=2), (B,)),
    Case("GatherV2-batch_dims1",
         lambda x: tf.gather(x, ids([[0, 2], [1, 1], [3, 0], [4, 2]]), axis=1, batch_dims=1),
         (F,)),
    Case("GatherV2-batch_dims1_axis2",
         lambda x: tf.gather(x, ids([[0, 5, 2], [1, 1, 1], [3, 0, 4], [4, 2, 2]]), axis=2,
                             batch_dims=1), (F,)),
    Case("GatherV2-batch_dims1_scalar_ids",
         lambda x: tf.gather(x, ids([0, 2, 1, 4]), axis=1, batch_dims=1), (F,)),
    Case("GatherV2-batch_dims2",
         lambda x: tf.gather(x, tf.reshape(tf.range(20) % 6, [4, 5, 1]), axis=2, batch_dims=2),
         (F,)),
    Case("GatherV2-image_channels", lambda x: tf.gather(x, ids([7, 0, 3]), axis=3), (IMAGE,)),
    Case("GatherV2-image_rows", lambda x: tf.gather(x, ids([4, 1]), axis=1), (IMAGE,)),
    Case("GatherNd-points", lambda x: tf.gather_nd(x, ids([[0, 1, 2], [3, 4, 5]])), (F,)),
    Case("GatherNd-rows", lambda x: tf.gather_nd(x, ids([[[1], [0]], [[3], [2]]])), (F,)),
    Case("GatherNd-slices", lambda x: tf.gather_nd(x, ids([[1, 2], [3, 0]])), (F,)),
    Case("GatherNd-int_ids_input", lambda x, i: tf.gather_nd(x, tf.reshape(i % 4, [3, 1])),
         (I32, IDS)),
    Case("GatherNd-batch_dims1", lambda x: tf.gather_nd(x, ids([[1], [2], [0], [3]]),
                                                        batch_dims=1), (F,)),
    Case("GatherNd-image", lambda x: tf.gather_nd(x, ids([[1, 0, 2], [0, 4, 5]])), (IMAGE,)),
]

SCATTER_IDS = [[1], [3], [1]]  # a repeated index: ScatterNd / Add add both


def updates(shape, dtype=tf.float32):
    """-3, -2.5, -2, ... (floats) or -3, -2, -1, ... (integers) in `shape`."""
    steps = tf.reshape(tf.range(np.prod(shape)), shape)
    return tf.cast(steps, dtype) * 0.5 - 3 if dtype.is_floating else tf.cast(steps - 3, dtype)


SCATTER = [
    Case("ScatterNd-rows", lambda u: tf.scatter_nd(ids(SCATTER_IDS), u, [5, 6]),
         (Input((3, 6)),)),
    Case("ScatterNd-points", lambda u: tf.scatter_nd(ids([[0, 1], [2, 3], [0, 1]]), u, [3, 4]),
         (Input((3,)),)),
    Case("ScatterNd-int32", lambda u: tf.scatter_nd(ids([[1, 0], [2, 2]]), u, [4, 3, 6]),
         (Input((2, 6), "int32", "small"),)),
    Case("ScatterNd-ids_input", lambda i, u: tf.scatter_nd(tf.reshape(i % 5, [3, 1]), u, [5, 4]),
         (IDS, Input((3, 4)))),
    Case("TensorScatterUpdate-rows",
         lambda x: tf.tensor_scatter_nd_update(x, ids([[3], [0]]), updates([2, 5, 6])), (F,)),
    Case("TensorScatterUpdate-points",
         lambda x: tf.tensor_scatter_nd_update(x, ids([[0, 1, 2], [3, 4, 5]]), updates([2])),
         (F,)),
    Case("TensorScatterUpdate-bool",
         lambda x: tf.tensor_scatter_nd_update(x, ids([[1, 1]]), tf.ones([1, 6], tf.bool)), (B,)),
    Case("TensorScatterUpdate-updates_input",
         lambda x, u: tf.tensor_scatter_nd_update(x, ids([[1, 2], [0, 0]]), u),
         (F, Input((2, 6)))),
    Case("TensorScatterAdd-repeated",
         lambda x: tf.tensor_scatter_nd_add(x, ids(SCATTER_IDS), updates([3, 5, 6])), (F,)),
    Case("TensorScatterAdd-int32",
         lambda x: tf.tensor_scatter_nd_add(x, ids([[0, 0], [0, 0]]),
                                            updates([2, 6], tf.int32)), (I32,)),
    Case("TensorScatterSub-points",
         lambda x: tf.tensor_scatter_nd_sub(x, ids([[0, 1, 2], [0, 1, 2]]), updates([2])), (F,)),
    Case("TensorScatterMax-rows",
         lambda x: tf.tensor_scatter_nd_max(x, ids(SCATTER_IDS), updates([3, 5, 6])), (F,)),
    Case("TensorScatterMax-points",
         lambda x: tf.tensor_scatter_nd_max(x, ids([[0, 1, 2], [3, 4, 5], [0, 1, 2]]),
                                            tf.constant([2.0, -1.0, 5.0])), (F,)),
    Case("TensorScatterMin-slices",
         lambda x: tf.tensor_scatter_nd_min(x, ids([[1, 2], [1, 2], [3, 0]]), updates([3, 6])),
         (F,)),
    Case("TensorScatterMin-int32",
         lambda x: tf.tensor_scatter_nd_min(x, ids([[2], [2]]), updates([2, 5, 6], tf.int32)),
         (I32,)),
]

SEGMENT_IDS = [0, 0, 2, 3]  # segment 1 is empty
UNSORTED_IDS = [3, 0, 3, 1]  # segments 2 and 4 are empty


def segment(op):
    return lambda x: getattr(raw, op)(data=x, segment_ids=ids(SEGMENT_IDS))


def unsorted(op, segment_ids=UNSORTED_IDS, count=5):
    return lambda x: getattr(raw, op)(data=x, segment_ids=ids(segment_ids),
                                      num_segments=tf.constant(count))


SEGMENTS = [
    *(Case(f"{op}-float", segment(op), (F,))
      for op in ("SegmentSum", "SegmentMean", "SegmentMax", "SegmentMin", "SegmentProd")),
    Case("SegmentSum-int32", segment("SegmentSum"), (I32,)),
    Case("SegmentMax-int32", segment("SegmentMax"), (I32,)),
    *(Case(f"{op}-float", unsorted(op), (F,))
      for op in ("UnsortedSegmentSum", "UnsortedSegmentMax", "UnsortedSegmentMin",
                 "UnsortedSegmentProd")),
    Case("UnsortedSegmentMax-int32", unsorted("UnsortedSegmentMax"), (I32,)),
    Case("UnsortedSegmentMin-int32", unsorted("UnsortedSegmentMin"), (I32,)),
    Case("UnsortedSegmentSum-ids_rank2",
         unsorted("UnsortedSegmentSum", [[0, 1, 1, 2, 0], [2, 2, 0, 1, 0], [1, 1, 1, 1, 1],
                                         [0, 0, 0, 0, 2]], 3), (F,)),
    Case("UnsortedSegmentMax-ids_rank2",
         unsorted("UnsortedSegmentMax", [[0, 1, 1, 2, 0], [2, 2, 0, 1, 0], [1, 1, 1, 1, 1],
                                         [0, 0, 0, 0, 2]], 4), (F,)),
    Case("UnsortedSegmentSum-ids_input",
         lambda x, i: tf.math.unsorted_segment_sum(x, i % 3, 3), (Input((3, 4)), IDS)),
    Case("UnsortedSegmentSum-vector",
         lambda x: tf.math.unsorted_segment_sum(x, ids([1, 1, 0, 2, 0, 1]), 3), (Input((6,)),)),
]

ONE_HOT = [
    Case("OneHot-last_axis_int", lambda i: tf.one_hot(i, 6, dtype=tf.int32), (IDS2,)),
    Case("OneHot-axis0", lambda i: tf.one_hot(i, 8, axis=0), (IDS2,)),
    Case("OneHot-axis1_on_off", lambda i: tf.one_hot(i, 5, on_value=2.5, off_value=-1.0, axis=1),
         (IDS2,)),
    Case("OneHot-out_of_range", lambda i: tf.one_hot(i - 2, 4, on_value=3, off_value=7),
         (IDS2,)),
    Case("OneHot-bool", lambda i: tf.one_hot(i, 8, on_value=True, off_value=False), (IDS,)),
    Case("OneHot-int64_ids_float64", lambda i: tf.one_hot(tf.cast(i, tf.int64), 8,
                                                          dtype=tf.float64), (IDS,)),
]

WHERE = [
    Case("Where-bool", lambda x: tf.where(x), (B,)),
    Case("Where-float", lambda x: tf.where(tf.nn.relu(x)), (F,)),
    Case("Where-int32", lambda x: tf.where(x), (Input((3, 4), "int32", "small"),)),
    Case("Where-image", lambda x: tf.where(x > 1.0), (IMAGE,)),
]


def top_k(k, output):
    return lambda x: tf.math.top_k(x, k)[output]


TOPK = [
    Case("TopKV2-values", top_k(3, 0), (F,)),
    Case("TopKV2-indices", top_k(3, 1), (F,)),
    Case("TopKV2-int_ties_values", top_k(4, 0), (I32,)),
    Case("TopKV2-int_ties_indices", top_k(4, 1), (I32,)),
    Case("TopKV2-relu_ties", lambda x: tf.math.top_k(tf.nn.relu(x), 5)[1], (F,)),
    Case("TopKV2-image_channels", top_k(2, 0), (IMAGE,)),
    Case("TopKV2-image_indices", top_k(3, 1), (IMAGE,)),
    Case("TopKV2-both", lambda x: tf.cast(tf.math.top_k(x, 2)[1], tf.float32)
         + tf.math.top_k(x, 2)[0], (F,)),
]

SQUARE = Input((3, 4, 4))
WIDE = Input((3, 4, 6))
MATRIX = [
    Case("MatrixDiag-v1", lambda x: raw.MatrixDiag(diagonal=x), (Input((3, 4)),)),
    Case("MatrixDiagV3-k0", lambda x: tf.linalg.diag(x), (Input((3, 4)),)),
    Case("MatrixDiagV3-k1", lambda x: tf.linalg.diag(x, k=1), (Input((3, 4)),)),
    Case("MatrixDiagV3-k_neg2_int", lambda x: tf.linalg.diag(x, k=-2),
         (Input((2, 3), "int32", "small"),)),
    Case("MatrixDiagV2", lambda x: raw.MatrixDiagV2(diagonal=x, k=0, num_rows=-1, num_cols=-1,
                                                    padding_value=0.0), (Input((4,)),)),
    Case("MatrixDiagPart-v1", lambda x: raw.MatrixDiagPart(input=x), (SQUARE,)),
    Case("MatrixDiagPartV3-k0_wide", lambda x: tf.linalg.diag_part(x), (WIDE,)),
    Case("MatrixDiagPartV3-k2", lambda x: tf.linalg.diag_part(x, k=2), (WIDE,)),
    Case("MatrixDiagPartV3-k_neg1", lambda x: tf.linalg.diag_part(x, k=-1), (WIDE,)),
    Case("MatrixDiagPartV3-image", lambda x: tf.linalg.diag_part(x), (IMAGE,)),
    Case("MatrixSetDiag-v1", lambda x, d: raw.MatrixSetDiag(input=x, diagonal=d),
         (SQUARE, Input((3, 4)))),
    Case("MatrixSetDiagV3-k0_wide", lambda x, d: tf.linalg.set_diag(x, d),
         (WIDE, Input((3, 4)))),
    Case("MatrixSetDiagV3-k1", lambda x, d: tf.linalg.set_diag(x, d, k=1),
         (WIDE, Input((3, 4)))),
    Case("MatrixSetDiagV3-int", lambda x: tf.linalg.set_diag(x, tf.zeros([4, 5], tf.int32)),
         (Input((4, 5, 6), "int32", "small"),)),
    Case("MatrixBandPart-lower", lambda x: tf.linalg.band_part(x, -1, 0), (WIDE,)),
    Case("MatrixBandPart-upper", lambda x: tf.linalg.band_part(x, 0, -1), (WIDE,)),
    Case("MatrixBandPart-band", lambda x: tf.linalg.band_part(x, 1, 2), (WIDE,)),
    Case("MatrixBandPart-all", lambda x: tf.linalg.band_part(x, -1, -1), (WIDE,)),
    Case("MatrixBandPart-int", lambda x: tf.linalg.band_part(x, 2, 0), (I32,)),
    Case("MatrixBandPart-image", lambda x: tf.linalg.band_part(x, 1, 1), (IMAGE,)),
]

A, BM = Input((3, 4)), Input((4, 5))
MATMUL = [
    Case("MatMul-two_inputs", lambda a, b: tf.matmul(a, b), (A, BM)),
    Case("MatMul-transpose_a", lambda a, b: tf.matmul(a, b, transpose_a=True),
         (Input((4, 3)), BM)),
    Case("MatMul-transpose_b", lambda a, b: tf.matmul(a, b, transpose_b=True),
         (A, Input((5, 4)))),
    Case("MatMul-transpose_both", lambda a, b: raw.MatMul(a=a, b=b, transpose_a=True,
                                                          transpose_b=True),
         (Input((4, 3)), Input((5, 4)))),
    Case("MatMul-const_first", lambda b: tf.matmul(tf.reshape(tf.range(12.0), [3, 4]), b), (BM,)),
    Case("MatMul-int32", lambda a, b: tf.matmul(a, b),
         (Input((3, 4), "int32", "small"), Input((4, 2), "int32", "small"))),
    Case("BatchMatMulV2-adj", lambda a, b: raw.BatchMatMulV2(x=a, y=b, adj_x=True, adj_y=True),
         (Input((2, 4, 3)), Input((2, 5, 4)))),
    Case("BatchMatMulV2-broadcast", lambda a, b: tf.matmul(a, b),
         (Input((2, 1, 3, 4)), Input((3, 4, 5)))),
    Case("BatchMatMulV3", lambda a, b: raw.BatchMatMulV3(x=a, y=b, Tout=tf.float32, adj_y=True),
         (Input((2, 3, 4)), Input((2, 5, 4)))),
    Case("BatchMatMul-v1", lambda a, b: raw.BatchMatMul(x=a, y=b, adj_x=True),
         (Input((2, 4, 3)), Input((2, 4, 5)))),
    Case("BatchMatMulV2-image", lambda a, b: tf.matmul(a, b),
         (Input((2, 3, 4, 5)), Input((2, 3, 5, 6)))),
]

LRN = [
    Case("LRN-default", lambda x: tf.nn.local_response_normalization(x), (IMAGE,)),
    Case("LRN-alexnet", lambda x: tf.nn.local_response_normalization(
        x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75), (IMAGE,)),
    Case("LRN-radius1", lambda x: tf.nn.local_response_normalization(
        x, depth_radius=1, bias=1.0, alpha=0.5, beta=0.5), (Input((1, 3, 3, 4)),)),
    Case("LRN-after_relu", lambda x: tf.nn.relu(tf.nn.local_response_normalization(
        tf.nn.relu(x), depth_radius=3, alpha=0.01)), (IMAGE,)),
]

CASES = GATHER + SCATTER + SEGMENTS + ONE_HOT + WHERE + TOPK + MATRIX + MATMUL + LRN


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_converts_like_tf(case):
    check(case)


REFUSED = [
    Case("MatrixDiagPartV3-band", lambda x: tf.linalg.diag_part(x, k=(-1, 1)), (WIDE,)),
    Case("SegmentSum-ids_input", lambda x, i: tf.math.segment_sum(x, i), (Input((3, 4)), IDS)),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.id)
def test_refused_with_a_reason(case):
    message = refusal(case)
    assert case.id.split("-")[0] in message


@pytest.fixture(autouse=True)
def frozen_graphs(monkeypatch):
    """These cases are written as frozen GraphDefs (half a SavedModel's time; the formats
    convert alike, tests/test_op_matrix.py covers SavedModels)."""
    import op_matrix

    monkeypatch.setattr(op_matrix, "FORMAT", "graphdef")
