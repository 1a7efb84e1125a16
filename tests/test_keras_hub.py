"""keras-hub backbones (tiny, built from their config classes, never presets) converted from
their SavedModel and `.keras` files and compared with TensorFlow: GPT-2 (causal attention
merged with a padding mask) and a keras-hub TransformerDecoder without padding (exactly
causal: SDPA's is_causal). BERT is in test_transformers.py. Skipped without keras-hub."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from conftest import assert_param_count, trainable_count
from test_transformers import _convert

from codegen.frontends.tensorflow.compat import import_tf
from codegen.zoo.keras_apps import save_keras_model

keras_hub = pytest.importorskip("keras_hub")

VOCAB, LENGTHS, BATCHES = 50, (7, 12), (1, 3)


def _spread(model, seed: int) -> None:
    """Vectors (gammas, betas, biases, a [heads, size] bias too) off 0 / 1; kernels and
    tables large enough that attention is sharp (a query/key swap shows)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        vector = len(weight.shape) == 1 or ("bias" in weight.path and len(weight.shape) == 2)
        mean, spread = (0.5, 0.3) if vector else (0.0, 0.3)
        weight.assign(rng.normal(mean, spread, weight.shape).astype("float32"))


def saved_backbone(builder, folder, name: str):
    """A tiny keras-hub model `builder(keras_hub.models)` with seed 4, its values spread off
    their initial ones, saved as `.keras` and SavedModel: (model, {format: path})."""
    import_tf()
    import keras
    import keras_hub

    keras.utils.set_random_seed(4)
    model = builder(keras_hub.models)
    _spread(model, 4)
    return model, save_keras_model(model, folder, name)


def _padding(batch: int, length: int) -> np.ndarray:
    mask = np.ones((batch, length), "int32")  # padding at the end, a different amount per row
    for row in range(batch):
        mask[row, length - 1 - 2 * row:] = 0
    return mask


def _error(ours: torch.Tensor, reference) -> float:
    reference = np.asarray(reference)
    assert ours.shape == reference.shape
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    import_tf()
    import keras

    keras.utils.set_random_seed(4)
    model = keras_hub.models.GPT2Backbone(vocabulary_size=VOCAB, num_layers=2, num_heads=2,
                                          hidden_dim=32, intermediate_dim=64,
                                          max_sequence_length=32)
    _spread(model, 4)
    return model, save_keras_model(model, tmp_path_factory.mktemp("gpt2"), "gpt2")


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_gpt2_backbone(gpt2, fmt, tmp_path) -> None:
    """Causal self-attention and a padding mask in one visible mask line, tanh GELU,
    pre-norm blocks, learned positions; matches TF at two lengths and two batch sizes."""
    model, paths = gpt2
    torch_model, source = _convert(paths[fmt], tmp_path)
    names = [tensor.name for tensor in model.inputs]  # forward takes them in this order
    assert list(inspect.signature(torch_model.forward).parameters) == names
    rng = np.random.default_rng(6)
    for batch in BATCHES:
        for length in LENGTHS:
            feeds = {"token_ids": rng.integers(0, VOCAB, (batch, length)).astype("int32"),
                     "padding_mask": _padding(batch, length)}
            expected = model(feeds, training=False)
            with torch.no_grad():
                ours = torch_model(*(torch.from_numpy(feeds[name]) for name in names))
            assert _error(ours, expected) <= 1e-4, (batch, length)
    assert len(torch_model.state_dict()) == len(model.weights)
    assert_param_count(tmp_path / "model", trainable_count(model))
    mask = re.search(r"(\w+) = torch\.ones\(\s*(\w+)\.shape\[1\],\s*\2\.shape\[1\],\s*"
                     r"dtype=torch\.bool,\s*device=\2\.device,?\s*\)\.tril\(\) & \((\w+)\[:, None, "
                     r"None, :\] > 0\)", source)
    assert mask, source
    assert source.count("F.scaled_dot_product_attention(") == 1  # one layer class, 2 instances
    assert f"attn_mask={mask[1]}," in source and "is_causal" not in source
    assert re.findall(r"class (\w+)\(nn.Module\):\n    \"\"\"TF scope [\w/*]+ \(2 instances\)",
                      source) == ["SelfAttention", "TransformerLayer"], source
    assert "nn.LayerNorm(32, eps=1e-05)" in source and 'approximate="tanh"' in source
    assert "nn.Embedding(50, 32)" in source and "PositionEmbedding(32, 32)" in source
    for noise in ("torch.where", "F.softmax", "torch.matmul", "torch.minimum", ".reshape("):
        assert noise not in source, noise


def test_causal_decoder_without_padding(tmp_path) -> None:
    """keras-hub's TransformerDecoder with no padding mask: the mask is exactly causal,
    SDPA's is_causal=True with no mask tensor at all."""
    import_tf()
    import keras

    keras.utils.set_random_seed(5)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, 32, 16, name="embed")(ids)
    x = keras_hub.layers.TransformerDecoder(32, 2, name="decoder")(x)
    model = keras.Model(ids, keras.layers.Dense(3, name="head")(x))
    _spread(model, 5)
    paths = save_keras_model(model, tmp_path, "decoder", formats=("keras",))
    torch_model, source = _convert(paths["keras"], tmp_path)
    assert_param_count(tmp_path / "model", trainable_count(model))
    rng = np.random.default_rng(7)
    for batch in BATCHES:
        for length in LENGTHS:
            feed = rng.integers(0, VOCAB, (batch, length)).astype("int32")
            with torch.no_grad():
                ours = torch_model(torch.from_numpy(feed))
            assert _error(ours, model(feed, training=False)) <= 1e-4, (batch, length)
    assert "is_causal=True" in source and "attn_mask" not in source, source
    assert "tril" not in source and "torch.where" not in source, source


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_vit_backbone(fmt, tmp_path) -> None:
    """keras-hub's ViTBackbone: patch conv, class token expanded over the batch, learned
    positions, pre-norm blocks with exact (erf) GELU; its sizes are all known, so Keras
    writes its EinsumDense as reshapes around matmuls: read as nn.Linear all the same."""
    import_tf()
    import keras

    keras.utils.set_random_seed(6)
    model = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2,
                                         num_heads=2, hidden_dim=32, mlp_dim=64)
    _spread(model, 6)
    paths = save_keras_model(model, tmp_path, "vit", formats=(fmt,))
    torch_model, source = _convert(paths[fmt], tmp_path)
    rng = np.random.default_rng(8)
    for batch in BATCHES:
        images = rng.normal(0, 1, (batch, 32, 32, 3)).astype("float32")
        with torch.no_grad():  # the generated model takes NCHW
            ours = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
        assert _error(ours, model(images, training=False)) <= 1e-4, batch
    assert len(torch_model.state_dict()) == len(model.weights)
    assert_param_count(tmp_path / "model", trainable_count(model))  # class token, positions
    assert "nn.Conv2d(3, 32, kernel_size=8, stride=8)" in source
    assert re.search(r"\.expand\(\w+\.shape\[0\], -1, -1\)", source) and ".flatten(1, 2)" in source
    assert source.count("F.scaled_dot_product_attention(") == 1 and "attn_mask" not in source
    assert source.count(".unflatten(2, (2, 16))") == 3 and ".flatten(2)" in source
    assert "nn.LayerNorm(32, eps=1e-06)" in source and "F.gelu(" in source
    assert "approximate" not in source  # ViT's GELU is the exact one
    assert re.findall(r"class (\w+)\(nn.Module\):\n    \"\"\"TF scope [\w/*]+ \(2 instances\)",
                      source) == ["Mha", "LinearGelu", "TransformerBlock"], source
    for noise in ("torch.matmul", "torch.einsum", ".reshape(-1, 17", ".permute(0, 3, 1, 2)"):
        assert noise not in source, noise
