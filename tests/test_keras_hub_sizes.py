"""keras-hub backbones that compute positions or masks from sizes known only at run time
(issue 21): Bloom (ALiBi: tf.range of the key length), Whisper (the decoder's causal
mask from tf.range and tf.shape) and the decoders Llama, Mistral and Gemma (rotary positions
from the length, causal masks, grouped-query attention, RMSNorm, gated MLPs). Tiny configs built offline, random weights spread off
their initial values, converted from SavedModel and `.keras`, compared with TensorFlow at
lengths 1, 7 and 12, batch 1 and 3, padding masks partly zero (1e-4 max abs / max ref),
the parameter count equal to the source's, and the generated model through
torch.export.export with batch and length dynamic. Skipped without keras-hub."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from conftest import assert_param_count, trainable_count
from test_keras_hub import _spread
from test_transformers import _convert

from codegen.frontends.tensorflow.compat import import_tf
from codegen.zoo.keras_apps import save_keras_model

keras_hub = pytest.importorskip("keras_hub")

VOCAB, LENGTHS, BATCHES, MELS = 100, (1, 7, 12), (1, 3), 8


def _padding(batch: int, length: int) -> np.ndarray:
    """Padding at the end, a different amount per row; the first token always real."""
    mask = np.ones((batch, length), "int32")
    for row in range(batch):
        mask[row, max(1, length - 2 * row):] = 0
    return mask


def _feeds(rng, names: list[str], batch: int, length: int) -> dict[str, np.ndarray]:
    feeds = {}
    for name in names:
        if name.endswith("padding_mask"):
            feeds[name] = _padding(batch, length)
        elif name.endswith("token_ids"):
            feeds[name] = rng.integers(0, VOCAB, (batch, length)).astype("int32")
        else:  # audio features [N, frames, mels]
            feeds[name] = rng.normal(0, 1, (batch, 2 * length, MELS)).astype("float32")
    return feeds


def _error(ours: torch.Tensor, reference) -> float:
    reference = np.asarray(reference)
    assert tuple(ours.shape) == reference.shape
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


def _errors(model, torch_model) -> list[float]:
    names = [tensor.name for tensor in model.inputs]
    assert list(inspect.signature(torch_model.forward).parameters) == names
    rng, errors = np.random.default_rng(6), []
    for batch in BATCHES:
        for length in LENGTHS:
            feeds = _feeds(rng, names, batch, length)
            expected = model(feeds, training=False)
            with torch.no_grad():
                ours = torch_model(*(torch.from_numpy(feeds[name]) for name in names))
            if isinstance(expected, dict):  # outputs in the order of their sorted names
                errors += [_error(o, expected[key]) for o, key in zip(ours, sorted(expected))]
            else:
                errors.append(_error(ours, expected))
    return errors


def assert_mask_made_once(source: str) -> None:
    """The causal mask is made once, in the top model's forward (the file's last class), and
    passed down as Hugging Face's decoders do: no block rebuilds it, nor takes the residual
    stream a second time (`hidden_states_2`) only to read its length."""
    assert source.count(".tril()") == 1, source
    assert ".tril()" in source[source.rindex("\nclass "):]
    assert "hidden_states_2" not in source


def _exports(torch_model, names: list[str]) -> None:
    """torch.export with batch and length dynamic; the program agrees at other sizes."""
    batch, length = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("length", min=1,
                                                                               max=16)
    args, shapes = [], []
    for name in names:
        if name == "encoder_features":
            args.append(torch.randn(2, 12, MELS))
            shapes.append({0: batch, 1: 2 * length})
        else:
            args.append(torch.ones(2, 6, dtype=torch.int32))
            shapes.append({0: batch, 1: length})
    with torch.no_grad():
        exported = torch.export.export(torch_model, tuple(args), dynamic_shapes=tuple(shapes))
        other = [torch.cat([a, a, a], 0)[:, : (18 if a.dim() == 3 else 9)] for a in args]
        torch.testing.assert_close(exported.module()(*other), torch_model(*other))


def _model(kind: str, tmp_path_factory):
    import_tf()
    import keras

    keras.utils.set_random_seed(4)
    decoder = {"vocabulary_size": VOCAB, "num_layers": 2, "num_query_heads": 4,
               "num_key_value_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}
    if kind == "bloom":
        model = keras_hub.models.BloomBackbone(vocabulary_size=VOCAB, num_layers=2,
                                               num_heads=2, hidden_dim=32, intermediate_dim=64)
    elif kind == "llama":
        model = keras_hub.models.LlamaBackbone(**decoder)
    elif kind == "mistral":
        model = keras_hub.models.MistralBackbone(**decoder)
    elif kind == "gemma":
        model = keras_hub.models.GemmaBackbone(**decoder, head_dim=8)
    else:
        model = keras_hub.models.WhisperBackbone(
            vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=32,
            intermediate_dim=64, num_mels=MELS, max_encoder_sequence_length=32,
            max_decoder_sequence_length=32)
    _spread(model, 4)
    return model, save_keras_model(model, tmp_path_factory.mktemp(kind), kind)


@pytest.fixture(scope="module")
def bloom(tmp_path_factory):
    return _model("bloom", tmp_path_factory)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    return _model("whisper", tmp_path_factory)


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_bloom_backbone(bloom, fmt, tmp_path) -> None:
    """ALiBi's positions torch.arange(1 - key_length, 1) from the scores' run-time size."""
    model, paths = bloom
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors
    assert_param_count(tmp_path / "model", trainable_count(model))
    assert "torch.arange(" in source and ".item()" not in source
    if fmt == "savedmodel":
        _exports(torch_model, [tensor.name for tensor in model.inputs])


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_whisper_backbone(whisper, fmt, tmp_path) -> None:
    """The decoder's causal mask from tf.range(seq_len) >= tf.range(seq_len)[:, None];
    encoder and decoder inputs taken by name."""
    model, paths = whisper
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors
    if fmt == "keras":  # (the SavedModel's variables do not say that the Keras layer of the
        # encoder's position table is frozen: its 16 x 32 count as trainable there)
        assert_param_count(tmp_path / "model", trainable_count(model))
    assert "seq_len = " in source and ".item()" not in source
    if fmt == "savedmodel":
        _exports(torch_model, [tensor.name for tensor in model.inputs])


@pytest.fixture(scope="module", params=["llama", "mistral", "gemma"])
def decoder(request, tmp_path_factory):
    return request.param, _model(request.param, tmp_path_factory)


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_decoder_backbones(decoder, fmt, tmp_path) -> None:
    """Rotary positions from torch.arange of the length, the causal mask and the padding
    mask, grouped-query attention (SDPA's enable_gqa), nn.RMSNorm (Gemma's
    1 + scale: RMSNormPlusOne) and the gated MLP."""
    kind, (model, paths) = decoder
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors
    unread = sum(int(np.prod(v.shape)) for v in model.trainable_weights
                 if "reverse_embeddings" in v.path)  # the LM head: not in the backbone's graph
    assert_param_count(tmp_path / "model", trainable_count(model) - unread)
    assert "F.scaled_dot_product_attention(" in source and "enable_gqa=True" in source
    if kind == "gemma":  # (its grouped 5-D einsums: rewrites/grouped_attention.py)
        assert "RMSNormPlusOne(" in source
    else:
        assert "nn.RMSNorm(" in source
    assert ".item()" not in source
    if kind != "gemma":  # (Gemma's layer output: through a where the analysis does not follow)
        assert_mask_made_once(source)
    if fmt == "savedmodel":
        _exports(torch_model, [tensor.name for tensor in model.inputs])
