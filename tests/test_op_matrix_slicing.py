"""The single-op matrix of the slicing and shape-moving ops (Unpack, Split, SplitV, Slice,
StridedSlice with every mask, Roll, ReverseV2, ConcatV2, Pad/PadV2/MirrorPad, Transpose,
ExpandDims, Squeeze, BroadcastTo, Identity) on float32, int32 and bool tensors, on a plain
rank-3 tensor and on NHWC images (an image input, and an image flowing from a conv: the
generated model runs both as NCHW). Each case is one tiny TF graph converted in-process and
compared with TF (tests/op_matrix.py). An op of several outputs is read through a ConcatV2 of
its outputs in another order, so that every output and its position is compared.

The cases are written as frozen GraphDefs (~0.1 s a case, against ~0.4 s as SavedModels on
2 busy cores: the file stays under 30 s); one case per op also goes the SavedModel way, as
users export."""

from __future__ import annotations

import numpy as np
import op_matrix
import pytest
from op_matrix import Case, Input, check, refusal

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()

F = Input((2, 3, 4))
I32 = Input((2, 3, 4), "int32", "small")
B = Input((2, 3, 4), "bool")
WIDE = Input((2, 6, 5))
IMAGE = Input((2, 4, 5, 3))  # NHWC: the generated model runs it as NCHW
IMAGE_I32 = Input((2, 4, 5, 3), "int32", "small")
KERNEL = np.random.default_rng(3).normal(size=(3, 3, 3, 4)).astype(np.float32)
TYPED = {"float32": F, "int32": I32, "bool": B}


def conv(x):
    """An NHWC image made by a conv ([2, 4, 5, 4]): what the ops below read in an image model."""
    return tf.nn.conv2d(x, tf.constant(KERNEL), 1, "SAME")


def joined(parts, axis):
    """The outputs of a many-output op, reversed and joined: every one of them is compared."""
    return tf.concat(list(reversed(parts)), axis)


def case(id_, fn, *inputs):
    return Case(id_, fn, tuple(inputs) or (F,))


UNPACK = [
    case(f"Unpack-axis{axis}-{dtype}", lambda x, a=axis: tf.concat(
        list(reversed(tf.unstack(x, axis=a))), -1 if a in (0, 1, -3) else 0), spec)
    for axis in (0, 1, 2, -1) for dtype, spec in TYPED.items() if dtype != "bool" or axis == 1
] + [
    case("Unpack-one_output", lambda x: tf.unstack(x, axis=1)[2] * 2.0),
    case("Unpack-image-axis3", lambda x: joined(tf.unstack(x, axis=3), 0), IMAGE),
    case("Unpack-image-axis1", lambda x: joined(tf.unstack(x, axis=1), -1), IMAGE),
    case("Unpack-conv-axis-1", lambda x: joined(tf.unstack(conv(x), axis=-1), 1), IMAGE),
]

SPLIT = [
    case("Split-axis1-3", lambda x: joined(tf.split(x, 3, axis=1), 1)),
    case("Split-axis-1-2", lambda x: joined(tf.split(x, 2, axis=-1), -1)),
    case("Split-axis0-int32", lambda x: joined(tf.split(x, 2, axis=0), 0), I32),
    case("Split-bool", lambda x: joined(tf.split(x, 4, axis=2), 2), B),
    case("SplitV-sizes", lambda x: joined(tf.split(x, [1, 3, 2], axis=1), 1), WIDE),
    case("SplitV-minus_one", lambda x: joined(tf.split(x, [2, -1], axis=-1), -1), WIDE),
    case("SplitV-int32", lambda x: joined(tf.split(x, [1, 2], axis=1), 1), I32),
    case("SplitV-one_output", lambda x: tf.split(x, [2, 1, 3], axis=1)[1], WIDE),
    case("Split-image-channels", lambda x: joined(tf.split(conv(x), 2, axis=3), 3), IMAGE),
    case("SplitV-image-height", lambda x: joined(tf.split(x, [1, 3], axis=1), 1), IMAGE),
    case("Split-image-width-int32", lambda x: joined(tf.split(x, [3, -1], axis=2), 2), IMAGE_I32),
]

SLICE = [
    case("Slice-const", lambda x: tf.slice(x, [0, 1, 1], [2, 2, 3])),
    case("Slice-minus_one", lambda x: tf.slice(x, [1, 1, 0], [-1, -1, 2])),
    case("Slice-int32", lambda x: tf.slice(x, [0, 2, 1], [1, 1, -1]), I32),
    case("Slice-bool", lambda x: tf.slice(x, [0, 0, 2], [2, 3, 2]), B),
    case("Slice-image", lambda x: tf.slice(x, [0, 1, 1, 1], [2, 2, -1, 2]), IMAGE),
    case("Slice-conv", lambda x: tf.slice(conv(x), [0, 0, 2, 1], [-1, 3, 2, 2]), IMAGE),
]

STRIDED = [
    case("StridedSlice-ellipsis", lambda x: x[..., 1:-1]),
    case("StridedSlice-ellipsis_middle", lambda x: x[1:, ..., ::2]),
    case("StridedSlice-new_axis", lambda x: x[:, None, 1:]),
    case("StridedSlice-ellipsis_new_axis", lambda x: x[..., None, 1:-1:2]),
    case("StridedSlice-new_axis_last", lambda x: x[..., None]),
    case("StridedSlice-shrink_middle", lambda x: x[:, 1, 1:3]),
    case("StridedSlice-shrink_two", lambda x: x[1, :, -1]),
    case("StridedSlice-shrink_new_axis", lambda x: x[0, None, ..., 2]),
    case("StridedSlice-negative_stride", lambda x: x[:, ::-1]),
    case("StridedSlice-negative_stride_bounds", lambda x: x[:, :, 3:0:-2]),
    case("StridedSlice-negative_start", lambda x: x[:, -2:, -3:-1]),
    case("StridedSlice-stride3", lambda x: x[:, ::2, 1::3], WIDE),
    case("StridedSlice-begin_end_masks", lambda x: tf.strided_slice(
        x, [1, 1, 1], [2, 3, 3], [1, 1, 1], begin_mask=0b101, end_mask=0b010)),
    case("StridedSlice-int32", lambda x: x[..., None, ::-1], I32),
    case("StridedSlice-bool", lambda x: x[:, 1:, None, 0], B),
    case("StridedSlice-rank2", lambda x: x[None, :, 1], Input((3, 4))),
    case("StridedSlice-rank5", lambda x: x[:, 1, ..., ::2], Input((2, 3, 2, 2, 4))),
    case("StridedSlice-image-crop", lambda x: x[:, 1:-1, ::2, :], IMAGE),
    case("StridedSlice-image-ellipsis", lambda x: x[..., 1:], IMAGE),
    case("StridedSlice-image-shrink", lambda x: x[:, 1], IMAGE),
    case("StridedSlice-image-channel", lambda x: x[..., 0], IMAGE),
    case("StridedSlice-image-new_axis", lambda x: x[:, None, 1:3], IMAGE),
    case("StridedSlice-conv-reversed", lambda x: conv(x)[:, ::-1, :, 1:3], IMAGE),
    case("StridedSlice-conv-channel_keep", lambda x: conv(x)[..., 1:2], IMAGE),
]

ROLL = [
    case("Roll-axis1", lambda x: tf.roll(x, 1, 1)),
    case("Roll-negative", lambda x: tf.roll(x, -2, -1)),
    case("Roll-two_axes-int32", lambda x: tf.roll(x, [1, 3], [0, 2]), I32),
    case("Roll-bool", lambda x: tf.roll(x, 5, 2), B),
    case("Roll-image-height", lambda x: tf.roll(x, 2, 1), IMAGE),
    case("Roll-conv-channels", lambda x: tf.roll(conv(x), 1, 3), IMAGE),
]

REVERSE = [
    case("ReverseV2-axis0", lambda x: tf.reverse(x, [0])),
    case("ReverseV2-two_axes", lambda x: tf.reverse(x, [0, -1])),
    case("ReverseV2-int32", lambda x: tf.reverse(x, [2]), I32),
    case("ReverseV2-bool", lambda x: tf.reverse(x, [1]), B),
    case("ReverseV2-image", lambda x: tf.reverse(x, [2]), IMAGE),
    case("ReverseV2-conv-channels", lambda x: tf.reverse(conv(x), [3, 1]), IMAGE),
]

CONCAT = [
    case("ConcatV2-int32", lambda x, y: tf.concat([x, y], 1), I32, I32),
    case("ConcatV2-bool", lambda x, y: tf.concat([x, y], -1), B, B),
    case("ConcatV2-three_axis0", lambda x: tf.concat([x, x * 2.0, x], 0)),
    case("ConcatV2-image-channels", lambda x: tf.concat([x, conv(x)], 3), IMAGE),
]

PAD = [
    case("Pad-int32", lambda x: tf.pad(x, [[1, 0], [0, 2], [1, 1]]), I32),
    case("Pad-bool", lambda x: tf.pad(x, [[0, 0], [1, 1], [0, 2]]), B),
    case("PadV2-int32", lambda x: tf.pad(x, [[0, 1], [1, 0], [0, 0]], constant_values=3), I32),
    case("Pad-rank2", lambda x: tf.pad(x, [[1, 2], [3, 0]]), Input((3, 4))),
    case("Pad-rank5", lambda x: tf.pad(x, [[0, 0], [1, 0], [0, 1], [1, 1], [0, 2]]),
         Input((2, 2, 3, 2, 3))),
    case("MirrorPad-reflect", lambda x: tf.pad(x, [[0, 0], [2, 1], [1, 3]], "REFLECT")),
    case("MirrorPad-reflect_batch", lambda x: tf.pad(x, [[1, 1], [0, 0], [0, 0]], "REFLECT")),
    case("MirrorPad-symmetric", lambda x: tf.pad(x, [[0, 0], [2, 3], [1, 4]], "SYMMETRIC")),
    case("MirrorPad-symmetric_int32", lambda x: tf.pad(x, [[1, 2], [0, 0], [2, 0]], "SYMMETRIC"),
         I32),
    case("MirrorPad-reflect_bool", lambda x: tf.pad(x, [[0, 1], [1, 0], [0, 0]], "REFLECT"), B),
    case("MirrorPad-rank2", lambda x: tf.pad(x, [[2, 2], [1, 1]], "REFLECT"), Input((3, 4))),
    case("MirrorPad-image-reflect", lambda x: tf.pad(x, [[0, 0], [2, 2], [1, 1], [0, 0]],
                                                     "REFLECT"), IMAGE),
    case("MirrorPad-conv-symmetric", lambda x: tf.pad(conv(x), [[0, 0], [2, 1], [0, 3], [1, 1]],
                                                      "SYMMETRIC"), IMAGE),
    case("Pad-image-channels", lambda x: tf.pad(x, [[0, 0], [0, 0], [1, 0], [2, 1]]), IMAGE),
]

MOVE = [
    case("Transpose-int32", lambda x: tf.transpose(x, [2, 0, 1]), I32),
    case("Transpose-bool", lambda x: tf.transpose(x, [1, 0, 2]), B),
    case("Transpose-image", lambda x: tf.transpose(x, [0, 3, 1, 2]), IMAGE),
    case("ExpandDims-int32", lambda x: tf.expand_dims(x, -1), I32),
    case("ExpandDims-bool", lambda x: tf.expand_dims(x, 0), B),
    case("ExpandDims-image", lambda x: tf.expand_dims(x, 1), IMAGE),
    case("Squeeze-int32", lambda x: tf.squeeze(x, [0, 2]), Input((1, 3, 1, 4), "int32", "small")),
    case("Squeeze-bool", lambda x: tf.squeeze(x), Input((2, 1, 4), "bool")),
    case("Squeeze-image", lambda x: tf.squeeze(x, [2]), Input((2, 4, 1, 3))),
    case("BroadcastTo", lambda x: tf.broadcast_to(x, [2, 3, 4]), Input((3, 1))),
    case("BroadcastTo-rank_up-int32", lambda x: tf.broadcast_to(x, [2, 3, 4]), Input((4,), "int32",
                                                                                    "small")),
    case("BroadcastTo-bool", lambda x: tf.broadcast_to(x, [2, 3, 4]), Input((2, 1, 4), "bool")),
    case("BroadcastTo-image", lambda x: tf.broadcast_to(x, [2, 4, 5, 3]), Input((2, 1, 5, 1))),
    case("Identity-int32", lambda x: tf.identity(tf.identity(x)), I32),
    case("StopGradient-snapshot", lambda x: tf.raw_ops.Snapshot(input=tf.stop_gradient(x))),
    case("IdentityN", lambda x, y: tf.raw_ops.IdentityN(input=[x, y])[1] + x, F, F),
]

CASES = UNPACK + SPLIT + SLICE + STRIDED + ROLL + REVERSE + CONCAT + PAD + MOVE


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_slicing_op_matches_tensorflow(case, monkeypatch):
    monkeypatch.setattr(op_matrix, "FORMAT", "graphdef")
    check(case)


SAVED = [next(c for c in CASES if c.id == id_) for id_ in (
    "Unpack-axis1-float32", "Split-image-channels", "SplitV-minus_one", "Slice-conv",
    "StridedSlice-ellipsis_new_axis", "StridedSlice-conv-reversed", "Roll-two_axes-int32",
    "ReverseV2-conv-channels", "MirrorPad-symmetric", "BroadcastTo-image")]


@pytest.mark.parametrize("case", SAVED, ids=[case.id for case in SAVED])
def test_slicing_op_matches_tensorflow_as_saved_model(case):
    assert op_matrix.FORMAT == "savedmodel"
    check(case)


UNKNOWN = Input((2, None, 4))  # an axis whose size is known only at run time
REFUSED = [
    (case("StridedSlice-negative_stride_unknown_size", lambda x: x[:, 3:0:-1], UNKNOWN),
     "negative stride and bounds of an axis whose size is known only at run time"),
    (case("SplitV-minus_one_unknown_size", lambda x: tf.split(x, [1, -1], 1)[1], UNKNOWN),
     "split sizes with a -1 of an axis whose size is known only at run time"),
    (case("Roll-run_time_shift", lambda x: tf.roll(x, tf.cast(tf.reduce_max(x), tf.int32), 1)),
     "roll by a shift or axis computed at run time"),
]


@pytest.mark.parametrize("case, reason", REFUSED, ids=[case.id for case, _ in REFUSED])
def test_slicing_form_without_a_static_meaning_is_refused_with_its_reason(case, reason):
    message = refusal(case)
    assert "\n" not in message and reason in message, message
    assert f"({case.id.split('-')[0]})" in message, message
