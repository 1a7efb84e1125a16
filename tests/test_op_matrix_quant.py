"""Single-op matrix of fake quantization (FakeQuantWithMinMax*, QuantizeAndDequantizeV2/V3/V4)
and of the detection ops (CropAndResize, NonMaxSuppressionV3/V4/V5, SpaceToBatchND and
BatchToSpaceND on their own), each a tiny TF graph converted in-process and compared with TF
(tests/op_matrix.py). Cases with inputs on the rounding grid's half steps check the rounding
mode (half up against half to even)."""

from __future__ import annotations

import numpy as np
import pytest
from op_matrix import Case, Input, check, refusal

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()
raw = tf.raw_ops

F = Input((2, 5, 4))
IMAGE = Input((2, 4, 6, 3))
HALVES = Input((3, 11), "int32", "small")  # -5..5: x / 2 lands on half steps


def halves(x):
    return tf.cast(x, tf.float32) * 0.5


def fq_args(name, **kw):
    return Case(f"FakeQuantWithMinMaxArgs-{name}",
                lambda x: raw.FakeQuantWithMinMaxArgs(inputs=x, **kw), (F,))


def fq_vars(name, low, high, spec=F, pre=lambda x: x, **kw):
    return Case(f"FakeQuantWithMinMaxVars-{name}", lambda x: raw.FakeQuantWithMinMaxVars(
        inputs=pre(x), min=tf.constant(low, tf.float32), max=tf.constant(high, tf.float32),
        **kw), (spec,))


def fq_channel(name, low, high, spec=IMAGE, **kw):
    return Case(f"FakeQuantWithMinMaxVarsPerChannel-{name}",
                lambda x: raw.FakeQuantWithMinMaxVarsPerChannel(
                    inputs=x, min=tf.constant(low, tf.float32), max=tf.constant(high, tf.float32),
                    **kw), (spec,))


def qdq(version, name, low=0.0, high=0.0, spec=F, pre=lambda x: x, num_bits=8, **kw):
    def fn(x):
        args = dict(input=pre(x), input_min=tf.constant(low, tf.float32),
                    input_max=tf.constant(high, tf.float32), **kw)
        if version == "V3":
            return raw.QuantizeAndDequantizeV3(num_bits=tf.constant(num_bits), **args)
        return getattr(raw, f"QuantizeAndDequantize{version}")(num_bits=num_bits, **args)
    return Case(f"QuantizeAndDequantize{version}-{name}", fn, (spec,))


QUANT = [
    fq_args("default"), fq_args("min-1-max-1", min=-1.0, max=1.0),
    fq_args("bits4", min=-2.0, max=3.0, num_bits=4),
    fq_args("narrow", min=-2.5, max=2.5, narrow_range=True),
    fq_args("positive-range", min=0.0, max=2.0),  # nudged: zero point 0
    fq_args("nudged", min=-0.1, max=2.3, num_bits=3),  # zero point rounded, range moved
    fq_vars("const", -2.0, 2.0), fq_vars("const-bits5-narrow", -1.5, 3.0, num_bits=5,
                                         narrow_range=True),
    fq_vars("half-steps", 0.0, 255.0, HALVES, lambda x: halves(x) + 3.0),  # half up
    fq_vars("bits16", -4.0, 4.0, num_bits=16),
    fq_channel("const", [-1.0, -2.0, -0.5], [1.0, 3.0, 0.5]),
    fq_channel("narrow-bits6", [-1.0, -2.0, -0.5], [1.0, 3.0, 0.5], num_bits=6,
               narrow_range=True),
    fq_channel("rank2", [-1.0, -2.0, -0.5, -3.0], [1.0, 3.0, 0.5, 0.1], Input((5, 4))),
    qdq("V2", "own-range"), qdq("V2", "own-range-unsigned", signed_input=False,
                                pre=lambda x: tf.abs(x)),
    qdq("V2", "range", -2.0, 1.5, range_given=True),
    qdq("V2", "range-narrow-bits4", -2.0, 1.5, range_given=True, narrow_range=True, num_bits=4),
    qdq("V2", "half-steps-even", -127.0, 127.0, HALVES, halves, range_given=True,
        narrow_range=True),
    qdq("V2", "half-steps-up", -127.0, 127.0, HALVES, halves, range_given=True,
        narrow_range=True, round_mode="HALF_UP"),
    qdq("V2", "own-range-half-up", round_mode="HALF_UP"),
    # (TF 2.21's V2 and V4 kernels take no per-axis range: "input_min must be a scalar")
    qdq("V3", "axis", [-1.0, -2.0, -0.5], [1.0, 3.0, 0.5], IMAGE, range_given=True, axis=3),
    qdq("V3", "axis-narrow-bits5", [-1.0, -2.0, -0.5, -1.0], [1.0, 3.0, 0.5, 2.0], Input((4, 3, 5)),
        range_given=True, axis=0, narrow_range=True, num_bits=5),
    qdq("V2", "axis-own-range", [0.0] * 3, [0.0] * 3, Input((4, 3, 5)), axis=1),
    qdq("V4", "axis-own-range-unsigned", [0.0] * 5, [0.0] * 5, Input((4, 3, 5)), axis=2,
        signed_input=False, pre=tf.abs),
    qdq("V3", "range", -1.0, 1.0, range_given=True, num_bits=6),
    qdq("V3", "own-range", num_bits=8), qdq("V3", "unsigned", 0.0, 3.0, range_given=True,
                                            signed_input=False),
    qdq("V4", "range", -3.0, 2.0, range_given=True),
    qdq("V2", "range-special-values", -3.0, 2.0, Input((3, 9), kind="special"), range_given=True),
    fq_vars("special-values", -3.0, 2.0, Input((3, 9), kind="special")),
    qdq("V4", "own-range-half-up-bits3", num_bits=3, round_mode="HALF_UP"),
]


def crop(name, boxes, indices, size, spec=IMAGE, **kw):
    return Case(f"CropAndResize-{name}", lambda image, b: raw.CropAndResize(
        image=image, boxes=b, box_ind=tf.constant(indices, tf.int32),
        crop_size=tf.constant(size, tf.int32), **kw), (spec, boxes))


BOXES = Input((5, 4), kind="probability")  # inside the image
WIDE = Input((5, 4), kind="normal")  # partly outside: extrapolated
I5 = [0, 1, 1, 0, 1]


def nms(version, name, n=12, size=6, iou=0.5, score=float("-inf"), scores=None, **kw):
    def fn(boxes, s):
        s = scores(s) if scores else s
        args = dict(boxes=boxes, scores=s, max_output_size=tf.constant(size, tf.int32),
                    iou_threshold=tf.constant(iou, tf.float32),
                    score_threshold=tf.constant(score, tf.float32), **kw)
        if version == "V5":
            args["soft_nms_sigma"] = tf.constant(0.0)
        if version == "V2":
            del args["score_threshold"]
        return getattr(raw, f"NonMaxSuppression{version}")(**args)
    return Case(f"NonMaxSuppression{version}-{name}", fn,
                (Input((n, 4)), Input((n,), kind="probability")))


def first(case, index=0):
    return Case(f"{case.id}-output{index}", lambda *xs: case.fn(*xs)[index], case.inputs)


KERNEL = np.random.default_rng(9).normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32)


def conv(x):
    return tf.nn.conv2d(x, tf.constant(KERNEL), 1, "SAME")


IMAGES = [  # after a conv: through the layout pass (NCHW, or NHWC behind transposes)
    Case("FakeQuantWithMinMaxVars-after-conv", lambda x: tf.quantization.fake_quant_with_min_max_vars(
        conv(x), -2.0, 3.0), (IMAGE,)),
    Case("FakeQuantWithMinMaxVarsPerChannel-after-conv",
         lambda x: tf.quantization.fake_quant_with_min_max_vars_per_channel(
             conv(x), [-1.0, -2.0, -0.5, -3.0], [1.0, 3.0, 0.5, 0.1], num_bits=5), (IMAGE,)),
    Case("QuantizeAndDequantizeV3-axis-after-conv", lambda x: raw.QuantizeAndDequantizeV3(
        input=conv(x), input_min=[-1.0, -2.0, -0.5, -3.0], input_max=[1.0, 3.0, 0.5, 0.1],
        num_bits=4, range_given=True, axis=3), (IMAGE,)),
    Case("QuantizeAndDequantizeV2-own-range-after-conv",
         lambda x: tf.quantization.quantize_and_dequantize_v2(conv(x), 0.0, 0.0), (IMAGE,)),
    Case("CropAndResize-after-conv", lambda x, b: raw.CropAndResize(
        image=conv(x), boxes=b, box_ind=tf.constant([1, 0, 1, 1, 0]), crop_size=[2, 3]),
         (IMAGE, Input((5, 4), kind="probability"))),
]

DETECTION = IMAGES + [
    crop("bilinear", BOXES, I5, [3, 4]), crop("nearest", BOXES, I5, [3, 4], method="nearest"),
    crop("extrapolated", WIDE, I5, [4, 5], extrapolation_value=-1.5),
    crop("nearest-extrapolated", WIDE, I5, [4, 3], method="nearest"),
    crop("one-point", WIDE, I5, [1, 1]), crop("upscale", BOXES, I5, [7, 9]),
    nms("V2", "default"), nms("V2", "iou-0.3", iou=0.3, size=3), nms("V3", "default"), nms("V3", "iou-0.2", iou=0.2), nms("V3", "score-threshold", score=0.4),
    nms("V3", "few", size=2), nms("V3", "ties", scores=lambda s: tf.round(s * 3.0) / 3.0),
    first(nms("V4", "pad", pad_to_max_output_size=True, size=10)),
    first(nms("V4", "pad", pad_to_max_output_size=True, size=10), 1),
    first(nms("V4", "no-pad", size=10)), first(nms("V4", "no-pad-count", size=10), 1),
    first(nms("V5", "scores", size=8, score=0.3), 1),
    first(nms("V5", "scores-pad", size=8, pad_to_max_output_size=True), 1),
    Case("SpaceToBatchND-2d", lambda x: tf.space_to_batch_nd(x, [2, 3], [[0, 0], [1, 2]]),
         (Input((2, 4, 6, 3)),)),
    Case("SpaceToBatchND-1d", lambda x: tf.space_to_batch_nd(x, [2], [[1, 0]]), (F,)),
    Case("BatchToSpaceND-2d", lambda x: tf.batch_to_space(x, [2, 2], [[0, 1], [1, 0]]),
         (Input((8, 3, 2, 3)),)),
    Case("BatchToSpaceND-1d", lambda x: tf.batch_to_space(x, [3], [[0, 2]]), (Input((6, 4, 2)),)),
    Case("SpaceToBatchND-BatchToSpaceND", lambda x: tf.batch_to_space(
        tf.space_to_batch_nd(x, [2, 2], [[1, 1], [0, 2]]) * 2.0, [2, 2], [[1, 1], [0, 2]]),
         (Input((1, 4, 6, 2)),)),
]


@pytest.mark.parametrize("case", QUANT + DETECTION, ids=[c.id for c in QUANT + DETECTION])
def test_matches_tf(case):
    check(case)


REFUSED = [
    (Case("NonMaxSuppressionV5-soft", lambda b, s: raw.NonMaxSuppressionV5(
        boxes=b, scores=s, max_output_size=4, iou_threshold=0.5, score_threshold=0.0,
        soft_nms_sigma=0.5)[0], (Input((6, 4)), Input((6,)))), "soft NMS"),
    (Case("NonMaxSuppressionV3-size-input", lambda b, s, n: raw.NonMaxSuppressionV3(
        boxes=b, scores=s, max_output_size=n[0], iou_threshold=0.5, score_threshold=0.0),
          (Input((6, 4)), Input((6,)), Input((1,), "int32", "shift"))),
     "max_output_size must be a constant"),
    (Case("QuantizeAndDequantizeV3-num-bits-input", lambda x, n: raw.QuantizeAndDequantizeV3(
        input=x, input_min=0.0, input_max=1.0, num_bits=n[0] + 2),
          (F, Input((1,), "int32", "shift"))), "num_bits must be a constant"),
]


@pytest.mark.parametrize("case, reason", REFUSED, ids=[c.id for c, _ in REFUSED])
def test_refused(case, reason):
    assert reason in refusal(case)


def test_case_ids_are_unique():
    ids = [case.id for case in QUANT + DETECTION]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


def test_fake_quant_variables_stay_parameters(tmp_path):
    """min and max read from variables: a trainable one is a parameter of the generated model
    (with a gradient, as TF gives it), a non-trainable one a buffer; the values are TF's."""
    import torch
    from op_matrix import compare, run_ours

    module = tf.Module()
    module.low = tf.Variable(-1.7, name="quant_min")
    module.high = tf.Variable(2.2, name="quant_max", trainable=False)
    module.f = tf.function(lambda x: tf.quantization.fake_quant_with_min_max_vars(
        x * 1.5, module.low, module.high, num_bits=6),
        input_signature=[tf.TensorSpec((3, 7), tf.float32, name="input0")])
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.f)
    x = np.random.default_rng(3).normal(0, 1.5, (3, 7)).astype(np.float32)
    compare(run_ours(tmp_path / "saved", [x], tmp_path), module.f(x).numpy())

    from codegen.verify import import_generated
    model = import_generated(tmp_path / "model").load_model()
    parameters = [p for p in model.parameters() if p.requires_grad]
    assert [float(p.detach()) for p in parameters] == [np.float32(-1.7)]
    assert any(float(b) == np.float32(2.2) for b in model.buffers())
    inputs = torch.from_numpy(x).requires_grad_()
    model.train()
    model(inputs).sum().backward()
    with tf.GradientTape() as tape:
        tape.watch(module.low)
        tf_x = tf.constant(x)
        tape.watch(tf_x)
        y = tf.reduce_sum(tf.quantization.fake_quant_with_min_max_vars(
            tf_x * 1.5, module.low, module.high, num_bits=6))
    grad_x, grad_min = tape.gradient(y, [tf_x, module.low])
    np.testing.assert_allclose(inputs.grad.numpy(), grad_x.numpy(), rtol=1e-6)
    np.testing.assert_allclose(float(parameters[0].grad), float(grad_min), rtol=1e-6)


def test_quantize_dequantize_variables_and_gradient(tmp_path):
    """QuantizeAndDequantizeV2 with its range in trainable variables: they stay parameters,
    the values are TF's, and the gradient passes straight through to x as TF's does."""
    import torch
    from op_matrix import compare, run_ours

    from codegen.verify import import_generated

    module = tf.Module()
    module.low, module.high = tf.Variable(-1.2, name="low"), tf.Variable(0.9, name="high")

    def fn(x):
        return tf.quantization.quantize_and_dequantize_v2(x, module.low, module.high,
                                                          range_given=True, num_bits=5)
    module.f = tf.function(fn, input_signature=[tf.TensorSpec((4, 6), tf.float32, name="input0")])
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.f)
    x = np.random.default_rng(4).normal(0, 1.5, (4, 6)).astype(np.float32)
    compare(run_ours(tmp_path / "saved", [x], tmp_path), module.f(x).numpy())
    model = import_generated(tmp_path / "model").load_model()
    assert sorted(float(p.detach()) for p in model.parameters()) == [np.float32(-1.2), np.float32(0.9)]
    inputs = torch.from_numpy(x).requires_grad_()
    (model(inputs) * torch.arange(24.0).reshape(4, 6)).sum().backward()
    tf_x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tf_x)
        y = tf.reduce_sum(fn(tf_x) * tf.reshape(tf.range(24.0), (4, 6)))
    np.testing.assert_array_equal(inputs.grad.numpy(), tape.gradient(y, tf_x).numpy())
