"""One small Keras model with the ops and patterns of the Keras applications, converted
from its SavedModel, its `.keras` file and its `.h5` file and compared with TensorFlow
(fast suite).

Patterns are recognised by structure, never by model or layer name: batch norm and layer
norm written as arithmetic, swish, GELU, hard-swish, squeeze-excite, depthwise conv with a
depth multiplier, dilated and grouped convs, cropping, Dense on a 4-D tensor, Dense after
Flatten (NHWC order), concat, rescaling/normalisation, a softmax on the last axis and a
SAME max pool whose pad only completes the last window (PyTorch's ceil_mode).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import assert_param_count, trainable_count

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated, verify
from codegen.zoo.keras_apps import calibrate_batch_norm, save_keras_model

SIZE = 24


def small_keras_model():
    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0])(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = layers.Conv2D(16, 3, strides=2, use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("swish")(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = layers.BatchNormalization(center=False)(x)
    x = layers.Activation("hard_swish")(x)
    squeeze = layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = layers.Conv2D(8, 1, activation="relu")(squeeze)
    squeeze = layers.Conv2D(32, 1, activation="hard_sigmoid")(squeeze)
    x = layers.Multiply()([x, squeeze])
    a = layers.Conv2D(16, 3, dilation_rate=2, padding="same")(x)
    b = layers.Conv2D(16, 3, groups=4, padding="same")(x)
    x = layers.Concatenate()([a, b])
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = layers.Dense(24, activation="gelu")(x)  # Dense on [N, H, W, C]
    x = layers.Cropping2D(((1, 2), (2, 1)))(x)
    x = layers.Conv2D(8, 3, activation="elu")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Flatten()(x)  # NHWC order: the dense weights must follow it
    x = layers.Dense(10, activation="leaky_relu")(x)
    outputs = layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    calibrate_batch_norm(model, SIZE, seed=3)
    return model


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_ops")
    model = small_keras_model()
    paths = save_keras_model(model, folder, "small")
    paths["h5"] = folder / "small.h5"  # the legacy HDF5 format
    model.save(paths["h5"])
    paths["trainable"] = trainable_count(model)
    return paths


@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "h5"])
def test_small_keras_model_matches_tensorflow(keras_files, fmt, tmp_path) -> None:
    to_ir(keras_files[fmt], None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    results = verify(keras_files[fmt], None, tmp_path / "model", batches=(4, 1))
    assert [r.batch for r in results] == [4, 1]
    for r in results:
        assert r.shape == (r.batch, 5)
        assert r.rel_error <= 1e-5, r
    source = (tmp_path / "model" / "model.py").read_text()
    for form in ("nn.BatchNorm2d(16", "LayerNorm2d(32", "F.silu(", "F.gelu(", "F.hardswish(",
                 "F.hardsigmoid(", "dilation=2", "groups=4", "groups=16"):
        assert form in source, form
    # BatchNormalization(center=False) trains no offset: the generated bias stays fixed
    assert re.search(r'untrained\(\s*nn\.BatchNorm2d\(32, [^)]*\), \("bias",\)\s*\)', source)
    assert_param_count(tmp_path / "model", keras_files["trainable"])
    model = import_generated(tmp_path / "model").load_model()
    probabilities = model(torch.rand(2, 3, SIZE, SIZE)).detach().numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_unknown_signature_is_one_clear_error(keras_files, tmp_path) -> None:
    from codegen.errors import InputError

    with pytest.raises(InputError, match="no signature 'predict'.*serving_default"):
        to_ir(keras_files["savedmodel"], None, None, tmp_path / "ir", signature="predict")
    assert not (tmp_path / "ir").exists()
