"""Attention in segmentation-style encoders written as `F.scaled_dot_product_attention`, the
layout once: keras-hub's MiTBackbone (SegFormer's Mix Transformer: keys and values reduced
spatially by a strided conv + LayerNorm, the key transposed twice before the score matmul)
and a Keras MultiHeadAttention over a conv's image tokens (ViT-style, at two image sizes).
Converted from SavedModel and `.keras` and compared with TensorFlow."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import assert_param_count, trainable_count
from test_keras_hub import _spread
from test_transformers import _convert

from codegen.frontends.tensorflow.compat import import_tf
from codegen.zoo.keras_apps import save_keras_model

BATCHES = (1, 3)
SIZE = 64  # MiTBackbone fixes its image size at construction


def _error(ours: torch.Tensor, reference) -> float:
    reference = np.asarray(reference)
    assert tuple(ours.shape) == reference.shape
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


def _assert_attention_is_sdpa(source: str, layers: int) -> None:
    assert source.count("F.scaled_dot_product_attention(") == layers, source
    assert "softmax" not in source, source
    assert not re.search(r"\.permute\([^()]*\)\s*\.permute\(", source), source


def _matches_tensorflow(keras_model, torch_model, sizes) -> list[float]:
    rng = np.random.default_rng(3)
    errors = []
    for batch in BATCHES:
        for size in sizes:
            image = rng.normal(size=(batch, size, size, 3)).astype("float32")
            expected = np.asarray(keras_model(image, training=False))
            with torch.no_grad():
                ours = torch_model(torch.from_numpy(image.transpose(0, 3, 1, 2)))
            if expected.ndim == 4:  # a feature map: ours is NCHW
                expected = expected.transpose(0, 3, 1, 2)
            errors.append(_error(ours, expected))
    assert max(errors) <= 1e-4, errors
    return errors


@pytest.fixture(scope="module")
def mit(tmp_path_factory):
    keras_hub = pytest.importorskip("keras_hub")
    import_tf()
    import keras

    keras.utils.set_random_seed(2)
    model = keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0, hidden_dims=[8, 16],
        layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2], image_shape=(SIZE, SIZE, 3))
    _spread(model, 2)
    return model, save_keras_model(model, tmp_path_factory.mktemp("mit"), "mit")


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_mix_transformer_attention_is_sdpa(mit, fmt, tmp_path) -> None:
    """Spatial-reduction attention (sr_ratio 2, one head) and plain attention (two heads):
    one SDPA call each, no softmax, no chained permutes; exact vs TF at batch 1 and 3."""
    model, paths = mit
    torch_model, source = _convert(paths[fmt], tmp_path)
    _assert_attention_is_sdpa(source, layers=2)
    _matches_tensorflow(model, torch_model, (SIZE,))
    assert_param_count(tmp_path / "model", trainable_count(model))


@pytest.fixture(scope="module")
def image_tokens(tmp_path_factory):
    import_tf()
    import keras

    keras.utils.set_random_seed(5)
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(16, 4, strides=4, name="patch_embed")(image)
    tokens = keras.layers.Reshape((-1, 16))(x)
    tokens = keras.layers.LayerNormalization(name="norm")(tokens)
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attn")(tokens, tokens)
    model = keras.Model(image, keras.layers.Add()([tokens, attended]))
    _spread(model, 5)
    return model, save_keras_model(model, tmp_path_factory.mktemp("tokens"), "tokens")


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_multi_head_attention_on_image_tokens_is_sdpa(image_tokens, fmt, tmp_path) -> None:
    """Keras MultiHeadAttention over a patch conv's tokens [N, H * W, C]: one SDPA call,
    exact vs TF at two image sizes and batch 1 and 3."""
    model, paths = image_tokens
    torch_model, source = _convert(paths[fmt], tmp_path)
    _assert_attention_is_sdpa(source, layers=1)
    _matches_tensorflow(model, torch_model, (32, 48))
    assert_param_count(tmp_path / "model", trainable_count(model))
