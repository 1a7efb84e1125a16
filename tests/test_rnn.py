"""Keras recurrent layers convert to nn.LSTM / nn.GRU / nn.RNN and match TensorFlow.

Each model is converted from its file, the generated model.py is imported and compared with
the Keras model at two sequence lengths (batch 1 and 3); the length is unknown in the source.
Every 1-D weight (biases, a GRU's [2, 3u] bias) is moved off Keras's 0/1 initial values so
that a bias mapped to the wrong gate or dropped shows.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import assert_clean_error, codegen

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

FEATURES, VOCAB = 4, 30
CASES = [(1, 7), (3, 12)]  # (batch, sequence length)


def _keras_model(name: str, layers_module, keras_module):
    L = layers_module
    keras_module.utils.set_random_seed(0)
    if name == "embedding_bilstm_gru":  # the model: Embedding -> Bidirectional(LSTM) -> GRU
        ids = keras_module.Input((None,), dtype="int32", name="ids")
        x = L.Embedding(VOCAB, 8)(ids)
        x = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
        x = L.GRU(5)(x)
        return keras_module.Model(ids, L.Dense(3)(x))
    x = keras_module.Input((None, FEATURES), name="x")
    if name == "stacked_lstm":
        y = L.LSTM(3)(L.LSTM(6, return_sequences=True)(L.LSTM(5, return_sequences=True)(x)))
    elif name == "lstm_state":
        y = list(L.LSTM(5, return_sequences=True, return_state=True)(x))
    elif name == "gru_state":
        y = list(L.GRU(5, return_state=True)(x))
    elif name == "simple_rnn":
        y = L.SimpleRNN(4, activation="relu")(L.SimpleRNN(5, return_sequences=True)(x))
    elif name == "backward":
        y = L.LSTM(5, go_backwards=True, return_sequences=True, use_bias=False)(x)
    elif name == "bidirectional_gru":
        y = L.Bidirectional(L.GRU(5))(x)
    elif name == "gru_reset_before":  # reset_after=False: GRUResetBefore, not nn.GRU
        y = L.GRU(5, reset_after=False, return_sequences=True)(x)
    return keras_module.Model(x, y)


def _off_zero_and_one(model) -> None:
    rng = np.random.default_rng(1)
    for variable in model.weights:
        if len(variable.shape) == 1 or (len(variable.shape) == 2 and variable.shape[0] == 2):
            variable.assign(rng.uniform(-0.5, 0.5, variable.shape).astype("float32"))


def _inputs(model, batch: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(batch * 100 + length)
    if model.inputs[0].dtype in ("int32", "int64") or "int" in str(model.inputs[0].dtype):
        return rng.integers(0, VOCAB, (batch, length)).astype(np.int32)
    return rng.standard_normal((batch, length, FEATURES)).astype(np.float32)


def _convert(source, tmp_path):
    to_ir(source, None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    return import_generated(tmp_path / "model")


def _worst_error(model, generated) -> float:
    worst = 0.0
    torch_model = generated.load_model()
    for batch, length in CASES:
        x = _inputs(model, batch, length)
        expected = model(x, training=False)
        expected = [np.asarray(e) for e in (expected if isinstance(expected, list) else [expected])]
        with torch.no_grad():
            ours = torch_model(torch.from_numpy(x))
        ours = [o.numpy() for o in (ours if isinstance(ours, tuple) else (ours,))]
        assert [o.shape for o in ours] == [e.shape for e in expected]
        worst = max([worst] + [float(np.abs(o - e).max() / np.abs(e).max())
                               for o, e in zip(ours, expected)])
    return worst


KERAS3 = ["embedding_bilstm_gru", "stacked_lstm", "lstm_state", "gru_state", "simple_rnn",
          "backward", "bidirectional_gru", "gru_reset_before"]


@pytest.mark.parametrize("name", KERAS3)
def test_keras3_rnn_matches_tensorflow(name, tmp_path):
    import_tf()
    import keras

    model = _keras_model(name, keras.layers, keras)
    _off_zero_and_one(model)
    model.save(tmp_path / "model.keras")
    generated = _convert(tmp_path / "model.keras", tmp_path)
    assert _worst_error(model, generated) <= 1e-4
    code = (tmp_path / "model" / "model.py").read_text()
    assert "while" not in code.lower().replace("awhile", "")
    assert ("nn.LSTM(" in code) == any(k in name for k in ("lstm", "backward"))
    assert ("nn.GRU(" in code) == ("gru" in name and "reset_before" not in name)
    assert ("GRUResetBefore(" in code) == ("reset_before" in name)


def test_keras3_savedmodel_rnn_matches_tensorflow(tmp_path):
    import_tf()
    import keras

    model = _keras_model("embedding_bilstm_gru", keras.layers, keras)
    _off_zero_and_one(model)
    model.export(str(tmp_path / "saved"), verbose=False)
    assert _worst_error(model, _convert(tmp_path / "saved", tmp_path)) <= 1e-4


@pytest.mark.parametrize("fmt", ["h5", "savedmodel"])
def test_tf_keras_rnn_matches_tensorflow(fmt, tmp_path):
    """tf_keras (Keras 2) writes its loops differently: a GRU's two biases are unstacked
    before the loop, and Keras 3 cannot read its LSTM from an .h5 file."""
    import_tf()
    import tf_keras

    model = _keras_model("embedding_bilstm_gru", tf_keras.layers, tf_keras)
    _off_zero_and_one(model)
    path = tmp_path / ("model.h5" if fmt == "h5" else "saved")
    model.save(path, **({"save_format": "tf"} if fmt == "savedmodel" else {}))
    assert _worst_error(model, _convert(path, tmp_path)) <= 1e-4


def test_generated_lstm_reads_like_pytorch_and_trains_one_bias(tmp_path):
    """nn.LSTM, batch first; Keras's one bias is bias_ih_l0 and the recurrent bias stays
    zero and untrained; the weight index names the Keras variables."""
    import_tf()
    import keras

    model = _keras_model("stacked_lstm", keras.layers, keras)
    _off_zero_and_one(model)
    model.save(tmp_path / "model.keras")
    generated = _convert(tmp_path / "model.keras", tmp_path)
    code = (tmp_path / "model" / "model.py").read_text()
    assert "one_bias(nn.LSTM(4, 5, batch_first=True))" in code
    torch_model = generated.build_model()
    lstm = next(m for m in torch_model.modules() if isinstance(m, torch.nn.LSTM))
    assert not lstm.bias_hh_l0.requires_grad and lstm.bias_ih_l0.requires_grad
    loaded = generated.load_model()
    first = next(m for m in loaded.modules() if isinstance(m, torch.nn.LSTM))
    assert torch.count_nonzero(first.bias_hh_l0) == 0
    keras_lstm = next(layer for layer in model.layers if "lstm" in layer.name)
    kernel = keras_lstm.cell.kernel.numpy()  # [in, 4u], gates i, f, c, o as PyTorch's
    np.testing.assert_array_equal(first.weight_ih_l0.detach().numpy(), kernel.T)
    import json

    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    sources = {entry.get("source") for entry in index.values()}
    assert keras_lstm.cell.kernel.path in sources


def test_gru_gates_are_reordered_for_pytorch(tmp_path):
    """Keras's GRU gates are (z, r, h), PyTorch's (r, z, n): the blocks swap once, at
    conversion."""
    import_tf()
    import keras

    model = _keras_model("gru_state", keras.layers, keras)
    _off_zero_and_one(model)
    model.save(tmp_path / "model.keras")
    gru = next(m for m in _convert(tmp_path / "model.keras", tmp_path).load_model().modules()
               if isinstance(m, torch.nn.GRU))
    kernel = next(layer for layer in model.layers if "gru" in layer.name).cell.kernel.numpy()
    z, r, h = np.split(kernel.T, 3)
    np.testing.assert_array_equal(gru.weight_ih_l0.detach().numpy(), np.concatenate([r, z, h]))


def _masked_model(keras, layers):
    keras.utils.set_random_seed(2)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = layers.Embedding(VOCAB, 8, mask_zero=True)(ids)
    x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
    x = layers.GRU(5, return_sequences=True)(x)
    return keras.Model(ids, [x, layers.SimpleRNN(4)(x)])


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "tf_keras_h5"])
def test_masked_rnn_matches_tensorflow(fmt, tmp_path):
    """Embedding(mask_zero=True): the steps of id 0 are skipped (state and output kept), at
    the end of a row (padding), in the middle (a hole) and at the start; the backward layer
    sees the mask reversed."""
    import_tf()
    import keras
    import tf_keras

    source = tf_keras if fmt == "tf_keras_h5" else keras
    model = _masked_model(source, source.layers)
    _off_zero_and_one(model)
    path = tmp_path / ("model.h5" if fmt == "tf_keras_h5" else "model.keras")
    if fmt == "savedmodel":
        model.export(str(path), verbose=False)
    else:
        model.save(path)
    torch_model = _convert(path, tmp_path).load_model()
    code = (tmp_path / "model" / "model.py").read_text()
    assert "ids != 0" in code and "Masked(one_bias(nn.LSTM(8, 6" in code  # forward(self, ids)
    rng = np.random.default_rng(5)
    for length in (7, 12):
        ids = rng.integers(1, VOCAB, (3, length)).astype(np.int32)
        ids[0, length - 3:] = 0  # padding
        ids[1, 2:4] = 0  # a hole
        ids[2, :2] = 0  # leading zeros
        expected = [np.asarray(e) for e in model(ids, training=False)]
        with torch.no_grad():
            ours = [o.numpy() for o in torch_model(torch.from_numpy(ids))]
        for o, e in zip(ours, expected):
            assert o.shape == e.shape
            assert np.abs(o - e).max() / np.abs(e).max() <= 1e-4


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_encoder_decoder_initial_state(cell, tmp_path):
    """initial_state=: the decoder starts from the encoder's last states, passed as PyTorch
    takes them (`self.decoder(y, (h, c))`); forward takes both inputs in Keras's order."""
    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    encoder, decoder = keras.Input((None, FEATURES), name="encoder"), keras.Input((None, 3), name="decoder")
    _, *states = getattr(layers, cell)(6, return_state=True)(encoder)
    y = getattr(layers, cell)(6, return_sequences=True)(decoder, initial_state=states)
    model = keras.Model([encoder, decoder], layers.Dense(2)(y))
    _off_zero_and_one(model)
    model.save(tmp_path / "model.keras")
    torch_model = _convert(tmp_path / "model.keras", tmp_path).load_model()
    code = (tmp_path / "model" / "model.py").read_text()
    given = r"\(decoder, \(\w+_h, \w+_c\)\)" if cell == "LSTM" else r"\(decoder, \w+_h\)"
    assert re.search(given, code), code
    rng = np.random.default_rng(8)
    for batch, length in CASES:
        feeds = [rng.standard_normal((batch, length, FEATURES)).astype(np.float32),
                 rng.standard_normal((batch, length + 2, 3)).astype(np.float32)]
        expected = np.asarray(model(feeds, training=False))
        with torch.no_grad():
            ours = torch_model(*map(torch.from_numpy, feeds)).numpy()
        assert np.abs(ours - expected).max() / np.abs(expected).max() <= 1e-4


def test_masking_layer_matches_tensorflow(tmp_path):
    """Masking(0.0): a step whose features are all 0 is skipped (any(x != 0) over features)."""
    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(4)
    x = keras.Input((None, FEATURES), name="x")
    y = layers.LSTM(5, return_sequences=True)(layers.Masking(0.0)(x))
    model = keras.Model(x, layers.GRU(3)(y))
    _off_zero_and_one(model)
    model.save(tmp_path / "model.keras")
    torch_model = _convert(tmp_path / "model.keras", tmp_path).load_model()
    assert ".any(dim=(2,))" in (tmp_path / "model" / "model.py").read_text()
    rng = np.random.default_rng(6)
    for length in (7, 12):
        x = rng.standard_normal((3, length, FEATURES)).astype(np.float32)
        x[0, length - 2:] = 0  # padding
        x[1, 3] = 0  # a hole
        x[2, 0, :2] = 0  # half zero: still a real step
        expected = np.asarray(model(x, training=False))
        with torch.no_grad():
            ours = torch_model(torch.from_numpy(x)).numpy()
        assert np.abs(ours - expected).max() / np.abs(expected).max() <= 1e-4


def test_an_unrecognised_cell_is_refused_by_name(tmp_path):
    """LSTM(activation="relu"): nn.LSTM has no such cell; the loop is named, nothing written."""
    import_tf()
    import keras
    from keras import layers

    x = keras.Input((None, FEATURES), name="x")
    y = layers.LSTM(5, activation="relu", name="relu_lstm")(x)
    keras.Model(x, y).save(tmp_path / "model.keras")
    result = codegen("to-ir", tmp_path / "model.keras", "-o", tmp_path / "ir")
    assert_clean_error(result, 4, "while loop", "relu_lstm", "Relu")
    assert not (tmp_path / "ir").exists()
