"""RMS normalisation written as arithmetic becomes `nn.RMSNorm` (Gemma's `1 + scale` form:
`RMSNormPlusOne`), recognised by structure in every form the sources write it: Keras 3's
RMSNormalization, keras-hub's Llama, Gemma and T5 layer norms (Pow or Square, Rsqrt or
Reciprocal(Sqrt), the scale on either side), a normalisation without a scale. Each model is
converted from its SavedModel, compared with TF at two lengths and batch 1 and 3, and its
trainable parameters counted against Keras'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_param_count, relative_error, trainable_count

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

CHANNELS = 16


def _norm_layer(kind: str):
    import keras

    if kind == "keras":
        return keras.layers.RMSNormalization(epsilon=1e-5)
    if kind == "llama":
        from keras_hub.src.models.llama.llama_layernorm import LlamaLayerNorm
        return LlamaLayerNorm(epsilon=1e-6)
    if kind == "gemma":
        from keras_hub.src.models.gemma.rms_normalization import RMSNormalization
        return RMSNormalization(epsilon=1e-6)
    if kind == "t5":
        from keras_hub.src.models.t5.t5_layer_norm import T5LayerNorm
        return T5LayerNorm(epsilon=1e-6)
    raise ValueError(kind)


def _model(kind: str):
    """Dense -> the norm -> Dense on [N, T, C], the scale drawn away from its initial value."""
    import_tf()
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((None, 8))
    x = keras.layers.Dense(CHANNELS)(inputs)
    norm = _norm_layer(kind)
    x = norm(x)
    outputs = keras.layers.Dense(4)(x)
    model = keras.Model(inputs, outputs)
    for variable in norm.trainable_weights:  # a scale of 0 (Gemma) or 1 would hide mistakes
        variable.assign(np.random.default_rng(1).normal(1.0, 0.5, variable.shape))
    return model


def _convert(folder, tmp_path):
    to_ir(folder, None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    return tmp_path / "model"


@pytest.mark.parametrize("kind", ["keras", "llama", "gemma", "t5"])
def test_rms_norm_forms(kind, tmp_path):
    model = _model(kind)
    model.export(str(tmp_path / "saved"), verbose=False)
    folder = _convert(tmp_path / "saved", tmp_path)
    source = (folder / "model.py").read_text()
    expected = "RMSNormPlusOne(16, eps=1e-06)" if kind == "gemma" else "nn.RMSNorm(16, eps="
    assert expected in source, source
    assert "rsqrt" not in source and "square" not in source
    assert_param_count(folder, trainable_count(model))
    ours = import_generated(folder).load_model()
    rng = np.random.default_rng(0)
    for batch, length in ((1, 7), (3, 12)):
        x = rng.normal(size=(batch, length, 8)).astype("float32")
        with torch.no_grad():
            got = ours(torch.from_numpy(x)).numpy()
        assert relative_error(got, model(x).numpy()) < 1e-5


def test_rms_norm_from_keras_file(tmp_path):
    """The same model from its `.keras` file gives the same module."""
    model = _model("keras")
    model.save(tmp_path / "m.keras")
    folder = _convert(tmp_path / "m.keras", tmp_path)
    assert "nn.RMSNorm(16, eps=1e-05)" in (folder / "model.py").read_text()
    x = np.random.default_rng(2).normal(size=(3, 5, 8)).astype("float32")
    with torch.no_grad():
        got = import_generated(folder).load_model()(torch.from_numpy(x)).numpy()
    assert relative_error(got, model(x).numpy()) < 1e-5


def _saved_function(fn, tmp_path):
    tf = import_tf()
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec([None, None, CHANNELS])])
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.f)
    return module.f


def test_rms_norm_without_scale_and_over_other_axes(tmp_path):
    """No scale: nn.RMSNorm(elementwise_affine=False); a mean over another axis is not an
    RMSNorm and stays arithmetic, still exact."""
    tf = import_tf()

    def fn(x):
        plain = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), -1, keepdims=True) + 1e-6)
        other = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), 1, keepdims=True) + 1e-6)
        return tf.nn.relu(plain) + other

    f = _saved_function(fn, tmp_path)
    folder = _convert(tmp_path / "saved", tmp_path)
    source = (folder / "model.py").read_text()
    assert "nn.RMSNorm(16, eps=1e-06, elementwise_affine=False)" in source
    assert source.count("RMSNorm(") == 1
    x = np.random.default_rng(3).normal(size=(2, 6, CHANNELS)).astype("float32")
    with torch.no_grad():
        got = import_generated(folder).load_model()(torch.from_numpy(x)).numpy()
    assert relative_error(got, f(x).numpy()) < 1e-5
