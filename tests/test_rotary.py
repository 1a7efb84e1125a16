"""The decoders' attention reads as Hugging Face's modeling_llama.py writes it (issue 21):
keras-hub's rotary embedding (half rotation; GPT-NeoX's partial rotary on the first
rotary_percentage of each head) is a `RotaryEmbedding` module with an `inv_freq` buffer whose
`cos, sin` one `apply_rotary_pos_emb(q, k, cos, sin)` applies to the query and the key;
grouped-query attention is SDPA's `enable_gqa=True` (no repeat of the key/value heads, no
grouped 5-D einsums as Gemma's);
the causal mask merged with the padding mask is one visible mask line into SDPA's
attn_mask. Tiny keras-hub configs built offline (tests/test_keras_hub_sizes.py), from the
SavedModel, compared with TF at lengths 1, 7 and 12, batch 1 and 3, padding partly zero,
and through torch.export with batch and length dynamic. Skipped without keras-hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_keras_hub import _spread
from test_keras_hub_sizes import VOCAB, _errors, _exports
from test_keras_hub_sizes import _model as _sizes_model
from test_transformers import _convert

from codegen.frontends.tensorflow.compat import import_tf
from codegen.zoo.keras_apps import save_keras_model

keras_hub = pytest.importorskip("keras_hub")
WINDOW = 3


def _neox(tmp_path_factory):
    """GPT-NeoX with half of each head rotated (rotary_percentage 0.5)."""
    import_tf()
    import keras

    keras.utils.set_random_seed(4)
    model = keras_hub.models.GPTNeoXBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=64,
        rotary_percentage=0.5, max_sequence_length=64)
    _spread(model, 4)
    return model, save_keras_model(model, tmp_path_factory.mktemp("neox"), "neox")


def _mistral(tmp_path_factory):
    """Mistral with a sliding window of 3 (shorter than the lengths 7 and 12 compared)."""
    import_tf()
    import keras

    keras.utils.set_random_seed(4)
    model = keras_hub.models.MistralBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=32, intermediate_dim=64, sliding_window=WINDOW)
    _spread(model, 4)
    return model, save_keras_model(model, tmp_path_factory.mktemp("mistral"), "mistral")


@pytest.fixture(scope="module", params=["llama", "mistral", "gemma", "gpt_neo_x"])
def converted(request, tmp_path_factory):
    kind = request.param
    if kind == "gpt_neo_x":
        model, paths = _neox(tmp_path_factory)
    elif kind == "mistral":
        model, paths = _mistral(tmp_path_factory)
    else:
        model, paths = _sizes_model(kind, tmp_path_factory)
    out = tmp_path_factory.mktemp(f"{kind}_out")
    torch_model, source = _convert(paths["savedmodel"], out)
    return kind, model, torch_model, source


def test_rotary_embedding_is_a_module_and_a_helper(converted) -> None:
    kind, _, torch_model, source = converted
    assert "class RotaryEmbedding(nn.Module):" in source
    assert 'self.register_buffer("inv_freq"' in source
    assert "def rotate_half(" in source and "def apply_rotary_pos_emb(" in source
    # one RotaryEmbedding, called once in the model's forward (the file's last class; its
    # cos and sin passed down to every layer, as Hugging Face's Llama does), and one apply
    # per attention class (query and key together); Gemma's layer output goes through ops
    # the length analysis does not follow (a where on the mask): one call per attention
    calls = source.count("cos, sin = self.rotary_emb(")
    assert source.count("q, k = apply_rotary_pos_emb(") == 1
    assert source.count("= RotaryEmbedding(") == calls == 1
    top = source[source.rindex("\nclass "):]
    assert ("cos, sin = self.rotary_emb(" in top) == (kind != "gemma")
    assert "torch.neg(" not in source
    if kind != "gemma":  # (Gemma interleaves the rotated halves after: its own chunk)
        assert ".chunk(2, dim=3)" not in source
    # the buffer holds TF's inv_freq exactly, and the constructor's formula agrees with it
    rotary = [m for m in torch_model.modules() if type(m).__name__ == "RotaryEmbedding"]
    assert rotary
    dim = 8 if kind != "gpt_neo_x" else 4
    rebuilt = type(rotary[0])(dim)
    torch.testing.assert_close(rotary[0].inv_freq, rebuilt.inv_freq)


def test_grouped_query_attention_and_masks(converted) -> None:
    kind, _, _, source = converted
    assert "F.scaled_dot_product_attention(" in source
    assert "repeat_interleave" not in source and '"abcde,' not in source  # (Gemma's 5-D
    # einsums of the grouped heads)
    if kind in ("llama", "mistral", "gemma"):  # 4 query heads, 2 key/value heads
        assert "enable_gqa=True" in source
    # causal & padding: one mask line, no minimum of the two as integers (Mistral's sliding
    # window: the keys i - W < j <= i)
    band = f".triu({1 - WINDOW})" if kind == "mistral" else ""
    assert f".tril(){band} & (" in source
    if kind != "gemma":  # (Gemma reads the merged mask again: it zeroes the output of a
        assert "torch.minimum(" not in source  # query that may attend nothing)


def test_values_match_tensorflow(converted) -> None:
    _, model, torch_model, source = converted
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors
    assert ".item()" not in source


def test_exports_with_dynamic_batch_and_length(converted) -> None:
    _, model, torch_model, _ = converted
    _exports(torch_model, [tensor.name for tensor in model.inputs])


def test_partial_rotary_keeps_the_rest_of_the_head(converted) -> None:
    kind, _, _, source = converted
    if kind != "gpt_neo_x":
        return
    assert "RotaryEmbedding(4)" in source  # half of the 8 of each head
    assert "torch.cat([q, " in source and "torch.cat([k, " in source


def test_the_checked_formula_is_tensorflows_rotation() -> None:
    """The formula a matched pattern's TF output is checked against (at conversion, with x fed
    at two sizes) is the rotation TF computes."""
    import_tf()
    import tensorflow as tf

    from codegen.frontends.tensorflow.rewrites.rotary import _expected

    x = np.random.default_rng(0).normal(0, 1, (2, 5, 3, 4)).astype("float32")
    inv_freq = np.array([1.0, 0.01], "float32")
    positions = tf.range(5, dtype=tf.float32)
    freqs = tf.einsum("i,j->ij", positions, inv_freq)
    emb = tf.concat([freqs, freqs], -1)[None, :, None, :]
    x1, x2 = tf.split(x, 2, -1)
    reference = x * tf.cos(emb) + tf.concat([-x2, x1], -1) * tf.sin(emb)
    np.testing.assert_allclose(_expected(x, inv_freq), reference.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("start", [0, 3])
def test_rotary_layer_alone_and_positions_that_do_not_start_at_zero(start, tmp_path) -> None:
    """keras-hub's RotaryEmbedding on its own, on a query and a key of one input; with
    start_index=3 the pattern looks the same but its positions are not arange(T): the check
    on TF refuses the rewrite and the arithmetic stays, still exact."""
    import_tf()
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, 16))
    query = keras.layers.Reshape((-1, 2, 8))(keras.layers.Dense(16)(inputs))
    key = keras.layers.Reshape((-1, 2, 8))(keras.layers.Dense(16)(inputs))
    rotary = keras_hub.layers.RotaryEmbedding(max_wavelength=500)
    outputs = keras.layers.Concatenate()([rotary(query, start_index=start),
                                          rotary(key, start_index=start)])
    model = keras.Model(inputs, outputs)
    paths = save_keras_model(model, tmp_path / "src", "rope")
    torch_model, source = _convert(paths["savedmodel"], tmp_path)
    # (the reshapes to heads take -1 for the length: nothing proves the two lengths equal,
    # so each is rotated on its own: x * cos + rotate_half(x) * sin)
    assert ("rotate_half(" in source) == ("class RotaryEmbedding(nn.Module)" in source) == (start == 0)
    assert "apply_rotary_pos_emb(" not in source
    rng = np.random.default_rng(2)
    for batch, length in ((1, 1), (3, 7)):
        x = rng.normal(0, 1, (batch, length, 16)).astype("float32")
        expected = np.asarray(model(x))
        with torch.no_grad():
            ours = torch_model(torch.from_numpy(x)).numpy()
        assert np.abs(ours - expected).max() <= 1e-5 * np.abs(expected).max()
