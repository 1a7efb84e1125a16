"""Precision: on a deep residual net, the generated model's default inference path (BatchNorm
folded into the convolutions, channels-last weights, in-place sums) is as close to the
float64 run of the same model as TensorFlow's own float32 is (fast suite).

One input's max error is a noisy figure: on Keras ResNet50V2, ResNet101 and ResNet152V2 the
ratio ours / TF of the distance to float64 went from 0.84 to 1.37 from input to input, and one
ResNet101 input gave 1.0e-4 or 1.2e-4 with 1 or 2 threads. Averaged over inputs (relative RMS)
it is stable: 0.97-0.99 on those three (`bench/precision.py`), 0.7 on the net below. So we
compare the relative RMS error averaged over several batches. A real loss is caught: folded
weights kept to 20 of float32's 23 mantissa bits fail the same check.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import TFRunner, _to_nchw, import_generated, random_inputs
from codegen.zoo.keras_apps import calibrate_batch_norm, save_keras_model

SIZE, WIDTH, BLOCKS = 16, 32, 12
BATCHES, BATCH = 4, 8
MARGIN = 1.2  # ours may be at most this much farther from float64 than TF's float32


def deep_resnet():
    """Keras ResNet101's bottleneck block (conv with bias, BN, ReLU; identity sum), 12 deep."""
    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(WIDTH, 3, padding="same", name="conv1_conv")(inputs)
    x = layers.BatchNormalization(epsilon=1.001e-5, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    for i in range(1, BLOCKS + 1):
        name = f"conv2_block{i}_"
        y = x
        for step, (channels, size) in enumerate([(WIDTH // 2, 1), (WIDTH // 2, 3), (WIDTH, 1)], 1):
            y = layers.Conv2D(channels, size, padding="same", name=f"{name}{step}_conv")(y)
            y = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}{step}_bn")(y)
            if step < 3:
                y = layers.Activation("relu", name=f"{name}{step}_relu")(y)
        x = layers.Add(name=f"{name}add")([x, y])
        x = layers.Activation("relu", name=f"{name}out")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, layers.Dense(10, name="predictions")(x), name="deep")
    calibrate_batch_norm(model, SIZE, seed=5)
    return model


def relative_rms(values: np.ndarray, reference: np.ndarray) -> float:
    error = values.astype(np.float64) - reference
    return float(np.sqrt(np.mean(error**2) / np.mean(reference**2)))


def distances(runner, io, model32, model64) -> tuple[float, float]:
    """Mean relative RMS distance to float64 of TF's float32 output and of ours."""
    tf_errors, our_errors = [], []
    for seed in range(BATCHES):
        feeds = random_inputs(io, BATCH, seed)
        (expected,) = runner.run([io["outputs"][0]["tf_name"]], feeds)
        spec = io["inputs"][0]
        x = torch.from_numpy(_to_nchw(feeds[spec["tf_name"]], spec["nchw"]))
        with torch.no_grad():
            exact = model64(x.double()).numpy()
            ours = model32(x).numpy()
        tf_errors.append(relative_rms(expected, exact))
        our_errors.append(relative_rms(ours, exact))
    return float(np.mean(tf_errors)), float(np.mean(our_errors))


@pytest.fixture(scope="module")
def deep_build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision")
    path = save_keras_model(deep_resnet(), folder, "deep", formats=("keras",))["keras"]
    to_ir(path, None, None, folder / "ir", quiet=True)
    build(folder / "ir", folder / "model", quiet=True)
    io = json.loads((folder / "model" / ".codegen" / "io.json").read_text())
    return TFRunner(path, None), io, folder / "model"


def test_default_inference_is_as_precise_as_tensorflow(deep_build) -> None:
    runner, io, model_dir = deep_build
    module = import_generated(model_dir)
    source = (model_dir / "model.py").read_text()
    assert "conv_bn_pairs" in source and " += " in source  # the measures under test are used
    model32 = module.load_model()  # what a user gets: fused BatchNorm, channels-last weights
    model64 = module.load_model(channels_last=False, fused=False).double()
    tf_distance, our_distance = distances(runner, io, model32, model64)
    print(f"\nfloat64 distance (relative RMS): TF {tf_distance:.3g}, ours {our_distance:.3g}", end="")
    assert 1e-8 < tf_distance < 1e-4  # float32 round-off, not a conversion error
    assert our_distance <= MARGIN * tf_distance, (our_distance, tf_distance)


def test_the_check_catches_a_small_precision_loss(deep_build) -> None:
    """Folded weights rounded to 20 mantissa bits (8x float32's rounding) must fail."""
    runner, io, model_dir = deep_build
    module = import_generated(model_dir)
    fuse_conv_bn_eval = module.fuse_conv_bn_eval

    def coarse_fuse(conv, norm):
        fused = fuse_conv_bn_eval(conv, norm)
        bits = fused.weight.data.contiguous().view(torch.int32)
        bits = (bits + (1 << 2)) & ~((1 << 3) - 1)  # round off the last 3 mantissa bits
        fused.weight.data = bits.view(torch.float32).reshape(fused.weight.shape)
        return fused

    module.fuse_conv_bn_eval = coarse_fuse  # the float64 reference is not fused at all
    model32 = module.load_model()
    model64 = module.load_model(channels_last=False, fused=False).double()
    tf_distance, our_distance = distances(runner, io, model32, model64)
    print(f"\n20-bit folded weights: TF {tf_distance:.3g}, ours {our_distance:.3g}", end="")
    assert our_distance > MARGIN * tf_distance, (our_distance, tf_distance)
