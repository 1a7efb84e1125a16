"""Image-to-image models from their SavedModel and Keras files, against TensorFlow at two
input sizes and batch 1 and 3: an ESPCN-style super-resolution net (convs, then
DepthToSpace) and a small segmentation head (UpSampling2D nearest and bilinear, a resize to
a skip connection's size, Concatenate), in Keras 3 and tf_keras."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import check_export_and_compile

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated
from codegen.zoo.keras_apps import save_keras_model

SIZES, BATCHES, SCALE = [(12, 16), (9, 7)], (1, 3), 3


def _layers():
    """Custom layers, registered so that their `.keras` files load in this process."""
    import_tf()
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable("codegen_tests")
    class DepthToSpace(keras.layers.Layer):
        def __init__(self, block_size: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.block_size = block_size

        def call(self, x):
            return keras.ops.depth_to_space(x, self.block_size)

        def get_config(self):
            return {**super().get_config(), "block_size": self.block_size}

    @keras.saving.register_keras_serializable("codegen_tests")
    class ResizeLike(keras.layers.Layer):
        """tf.image.resize of x to the height and width of skip (U-Net style)."""

        def call(self, x, skip):
            return tf.image.resize(x, tf.shape(skip)[1:3])

    return DepthToSpace, ResizeLike


def espcn():
    import keras
    from keras import layers

    depth_to_space, _ = _layers()
    keras.utils.set_random_seed(7)
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(16, 5, padding="same", activation="tanh", name="features")(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="tanh", name="mapping")(x)
    x = layers.Conv2D(3 * SCALE**2, 3, padding="same", name="subpixel")(x)
    outputs = depth_to_space(SCALE)(x)
    return keras.Model(inputs, outputs, name="espcn")


def segmentation_head():
    """Keras 3: encoder of strided convs; the decoder upsamples (nearest), resizes to each
    skip's size (bilinear) and concatenates; class scores at the input size."""
    import keras
    from keras import layers

    _, resize_like = _layers()
    keras.utils.set_random_seed(8)
    inputs = keras.Input((None, None, 3))
    f1 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    f2 = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(f1)
    f3 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(f2)
    x = resize_like()(layers.UpSampling2D((2, 3))(f3), f2)  # nearest: ops.repeat twice
    x = layers.Concatenate()([x, f2])
    x = layers.Conv2D(12, 3, padding="same", activation="relu")(x)
    x = resize_like()(x, f1)
    x = layers.Conv2D(8, 1, activation="relu")(layers.Concatenate()([x, f1]))
    x = resize_like()(x, inputs)
    outputs = layers.Conv2D(4, 1)(x)
    return keras.Model(inputs, outputs, name="segmentation_head")


def upsampling_head(keras, size=None):
    """UpSampling2D bilinear and nearest, then Resizing to the skip's size: tf_keras at any
    input size; Keras 3 (whose bilinear UpSampling2D needs known sizes) at `size`."""
    layers = keras.layers
    keras.utils.set_random_seed(10)
    inputs = keras.Input((size, size, 3))
    f1 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    f2 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(f1)
    x = layers.UpSampling2D(2, interpolation="bilinear")(f2)
    x = layers.Conv2D(8, 3, padding="same")(layers.Concatenate()([x, f1]))
    if size is None:
        x = layers.UpSampling2D((2, 3))(x)  # nearest
    else:
        x = layers.Resizing(size + 3, size - 5)(x)  # bilinear, non-integer ratios
    return keras.Model(inputs, layers.Conv2D(4, 1)(x), name="upsampling_head")


def _convert(path, tmp_path):
    to_ir(path, None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    module = import_generated(tmp_path / "model")
    model = module.load_model()  # (BatchNorms fused into their convs for inference)
    model.trainable_count = sum(p.numel() for p in module.build_model().parameters())
    return model, source


def _errors(model, torch_model, sizes=SIZES) -> list[float]:
    rng = np.random.default_rng(9)
    errors = []
    for height, width in sizes:
        for batch in BATCHES:
            images = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)
            expected = model(images, training=False).numpy()
            with torch.no_grad():
                ours = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
            ours = ours.numpy().transpose(0, 2, 3, 1)
            assert ours.shape == expected.shape
            errors.append(float(np.abs(ours - expected).max() / np.abs(expected).max()))
    return errors


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.fixture(scope="module")
def espcn_files(tmp_path_factory):
    model = espcn()
    return model, save_keras_model(model, tmp_path_factory.mktemp("espcn"), "espcn")


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_espcn_super_resolution(espcn_files, fmt, tmp_path) -> None:
    """DepthToSpace's channels come in TF's order: the last conv's output channels are
    permuted once, at conversion, so forward is a plain F.pixel_shuffle."""
    model, paths = espcn_files
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model)
    print(f"\nESPCN [{fmt}]: max rel error {max(errors):.3g}", end="")
    assert max(errors) <= 1e-4, errors
    assert torch_model.trainable_count == _trainable(model)
    assert "return F.pixel_shuffle(self.subpixel(mapping), 3)" in source, source
    assert "unflatten" not in source and "permute" not in source


@pytest.fixture(scope="module")
def segmentation_files(tmp_path_factory):
    model = segmentation_head()
    return model, save_keras_model(model, tmp_path_factory.mktemp("seg"), "seg")


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_segmentation_head(segmentation_files, fmt, tmp_path) -> None:
    model, paths = segmentation_files
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model)
    print(f"\nsegmentation head [{fmt}]: max rel error {max(errors):.3g}", end="")
    assert max(errors) <= 1e-4, errors
    assert torch_model.trainable_count == _trainable(model)
    text = " ".join(source.split())
    assert text.count('mode="bilinear", align_corners=False') == 3, source
    assert 'scale_factor=(2, 3), mode="nearest",' in text, source  # one resize, not 2 repeats
    if fmt == "savedmodel":  # sizes read from skips: fine under export and compile
        check_export_and_compile(torch_model, torch.randn(2, 3, 12, 16))
    assert "permute" not in source and ".repeat" not in source and "expand" not in source


@pytest.mark.parametrize("fmt", ["savedmodel"])
def test_tf_keras_upsampling(fmt, tmp_path) -> None:
    """tf_keras UpSampling2D at a run-time size: the input's size times the factors (its
    `.h5` is read through Keras 3, whose bilinear UpSampling2D needs known sizes)."""
    import_tf()
    import tf_keras

    model = upsampling_head(tf_keras)
    paths = {"h5": tmp_path / "head.h5", "savedmodel": tmp_path / "head"}
    model.save(paths[fmt], save_format="h5" if fmt == "h5" else "tf")
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model, [(12, 16), (8, 20)])
    print(f"\ntf_keras upsampling head [{fmt}]: max rel error {max(errors):.3g}", end="")
    assert max(errors) <= 1e-4, errors
    assert torch_model.trainable_count == _trainable(model)
    text = " ".join(source.split())
    assert 'scale_factor=2, mode="bilinear", align_corners=False' in text, source
    assert 'scale_factor=(2, 3), mode="nearest-exact"' in text, source  # half-pixel centers


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_keras_upsampling_and_resizing(fmt, tmp_path) -> None:
    """Keras 3 at two input sizes (one model each: its bilinear UpSampling2D needs them)."""
    import_tf()
    import keras

    for size in (16, 24):
        model = upsampling_head(keras, size)
        paths = save_keras_model(model, tmp_path / str(size), "head", formats=(fmt,))
        torch_model, source = _convert(paths[fmt], tmp_path / str(size))
        errors = _errors(model, torch_model, [(size, size)])
        print(f"\nKeras upsampling head {size} [{fmt}]: max rel error {max(errors):.3g}", end="")
        assert max(errors) <= 1e-4, errors
        assert torch_model.trainable_count == _trainable(model)
        text = " ".join(source.split())
        assert f'size=({size + 3}, {size - 5}), mode="bilinear", align_corners=False' in text
        assert f'size=({size // 2}, {size // 2}), mode="bilinear"' in text, source


def deeplab_v3(size: int):
    """keras-hub's DeepLabV3ImageSegmenter on the smallest ResNet keras-hub accepts (its first
    stack must have 64 filters), built from constructors, offline. Its bilinear UpSampling2D
    needs known sizes: one model per input size."""
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    from codegen.zoo.keras_apps import calibrate_batch_norm

    keras.utils.set_random_seed(11)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(size, size, 3))
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P3", upsampling_size=2,
        dilation_rates=[1, 2], projection_filters=8, low_level_feature_key="P2",
        image_shape=(size, size, 3))
    model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=3)
    calibrate_batch_norm(model, size, seed=11)
    return model


def test_keras_hub_deeplab_v3(tmp_path) -> None:
    import_tf()
    for size in (32, 48):
        model = deeplab_v3(size)
        paths = save_keras_model(model, tmp_path / str(size), "deeplab", formats=("keras",))
        torch_model, source = _convert(paths["keras"], tmp_path / str(size))
        errors = _errors(model, torch_model, [(size, size)])
        print(f"\nDeepLabV3 {size} [keras]: max rel error {max(errors):.3g}", end="")
        assert max(errors) <= 1e-4, errors
        assert torch_model.trainable_count == _trainable(model)
        assert 'mode="bilinear", align_corners=False' in " ".join(source.split())
