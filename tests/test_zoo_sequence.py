"""Full-size sequence models (marker `zoo`; .ci/run includes it): keras-hub BERT-base
(110 M parameters, built offline from its config class with deterministic random weights)
from its SavedModel, converted with `codegen to-ir` + `build` and checked with `codegen
verify` (lengths 16 and 7, batches 4 and 1, token ids in range, a mask with padding), then at
length 128 against the SavedModel; and a 2-layer LSTM language model from its `.keras` file.
The figures are printed (`-s`) for the README.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import codegen

from codegen.frontends.tensorflow.compat import import_tf
from codegen.verify import import_generated

pytestmark = pytest.mark.zoo


def _verify(source, out_dir) -> float:
    result = codegen("verify", source, out_dir)
    print(f"\n{source.name}: " + " | ".join(line[:120] for line in result.stdout.splitlines()))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return max(float(line.split("= ")[1].split()[0]) for line in result.stdout.splitlines()
               if line.startswith("batch "))


def test_bert_base_savedmodel(tmp_path):
    tf = import_tf()
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    keras.utils.set_random_seed(0)
    bert = keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=12, num_heads=12,
                                         hidden_dim=768, intermediate_dim=3072,
                                         max_sequence_length=512)
    rng = np.random.default_rng(0)
    for weight in bert.weights:  # 1-D weights off 0 / 1, so a wrong mapping shows
        if len(weight.shape) == 1:
            weight.assign(weight.numpy() + rng.normal(0, 0.1, weight.shape).astype("float32"))
    bert.export(str(tmp_path / "bert"), verbose=False)
    assert codegen("to-ir", tmp_path / "bert", "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    assert _verify(tmp_path / "bert", tmp_path / "model") <= 1e-4

    model = import_generated(tmp_path / "model").load_model()
    loaded = tf.saved_model.load(str(tmp_path / "bert"))
    ids = rng.integers(0, 30522, (2, 128)).astype("int32")
    mask = np.ones((2, 128), "int32")
    mask[1, 100:] = 0
    segments = (np.arange(128)[None] >= 64).astype("int32").repeat(2, 0)
    feeds = {"token_ids": ids, "padding_mask": mask, "segment_ids": segments}
    expected = loaded.serve(feeds)
    names = [tensor.name for tensor in bert.inputs]
    with torch.no_grad():
        ours = model(*(torch.from_numpy(feeds[name]) for name in names))
    for value in ours:
        reference = next(np.asarray(e) for e in expected.values() if e.shape == value.shape)
        error = np.abs(value.numpy() - reference).max() / np.abs(reference).max()
        print(f"\nBERT-base length 128, batch 2: {tuple(value.shape)} {error:.3g}", end="")
        assert error <= 1e-4


def test_lstm_language_model_keras(tmp_path):
    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = layers.Embedding(20000, 256, mask_zero=True)(ids)
    x = layers.LSTM(512, return_sequences=True)(x)
    x = layers.LSTM(512, return_sequences=True)(x)
    model = keras.Model(ids, layers.Dense(20000)(x))
    model.save(tmp_path / "lm.keras")
    assert codegen("to-ir", tmp_path / "lm.keras", "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    assert _verify(tmp_path / "lm.keras", tmp_path / "model") <= 1e-4
