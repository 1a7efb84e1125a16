"""A bfloat16 source stays bfloat16: its weights are stored as their bits (`.npy` of uint16,
`graph.json` and `weights/index.json` name the dtype), `load_model()` gives bfloat16
parameters and `load_model(dtype=torch.float32)` the same values in float32, which match a
float32 copy of the source; `codegen dump` writes bfloat16 tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_param_count, codegen, relative_error, trainable_count

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

VOCABULARY = 50


def _model(dtype: str):
    """Token ids -> Embedding -> Dense -> LayerNorm -> Dense (gelu) -> RMSNorm -> Dense."""
    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    x = layers.Embedding(VOCABULARY, 16, dtype=dtype)(ids)
    x = layers.Dense(24, dtype=dtype)(x)
    x = layers.LayerNormalization(dtype=dtype)(x)
    x = layers.Dense(24, activation="gelu", dtype=dtype)(x)
    x = layers.RMSNormalization(dtype=dtype)(x)
    outputs = layers.Dense(8, dtype=dtype)(x)
    return keras.Model(ids, outputs)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(the bfloat16 Keras model, its float32 copy, the generated model's folder)."""
    folder = tmp_path_factory.mktemp("bf16")
    source = _model("bfloat16")
    for variable in source.weights:  # away from the initial ones and zeros, still bfloat16
        rng = np.random.default_rng(len(variable.path))
        variable.assign((variable.numpy().astype("float32")
                         + rng.normal(0, 0.2, variable.shape)).astype(variable.dtype))
    copy = _model("float32")
    copy.set_weights([w.astype("float32") for w in source.get_weights()])
    source.export(str(folder / "saved"), verbose=False)
    to_ir(folder / "saved", None, None, folder / "ir", quiet=True)
    build(folder / "ir", folder / "model", quiet=True)
    return source, copy, folder


def _ids(batch: int, length: int) -> np.ndarray:
    return np.random.default_rng(batch * 100 + length).integers(
        0, VOCABULARY, (batch, length)).astype("int32")


def test_weights_stay_bfloat16_on_disk(converted):
    source, _, folder = converted
    weights = json.loads((folder / "ir" / "graph.json").read_text())["weights"]
    assert {entry["dtype"] for entry in weights.values()} == {"bfloat16"}
    index = json.loads((folder / "model" / "weights" / "index.json").read_text())
    for key, entry in index.items():
        assert entry["dtype"] == "bfloat16"
        assert np.load(folder / "model" / "weights" / f"{key}.npy").dtype == np.uint16
    assert_param_count(folder / "model", trainable_count(source))


def test_load_model_is_bfloat16_and_matches_tf(converted):
    source, _, folder = converted
    model = import_generated(folder / "model").load_model()
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    for batch, length in ((1, 7), (3, 12)):
        ids = _ids(batch, length)
        with torch.no_grad():
            ours = model(torch.from_numpy(ids)).float().numpy()
        expected = np.asarray(source(ids)).astype("float32")
        assert relative_error(ours, expected) < 3e-2  # bfloat16 keeps 8 bits of mantissa


def test_float32_matches_a_float32_copy_of_the_source(converted):
    _, copy, folder = converted
    model = import_generated(folder / "model").load_model(dtype=torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for batch, length in ((1, 1), (1, 7), (3, 12)):
        ids = _ids(batch, length)
        with torch.no_grad():
            ours = model(torch.from_numpy(ids)).numpy()
        assert relative_error(ours, np.asarray(copy(ids))) < 1e-5


def test_dump_writes_bfloat16_tensors(converted, tmp_path):
    _, _, folder = converted
    result = codegen("dump", folder / "model", "-o", tmp_path / "model.pth")
    assert result.returncode == 0, result.stderr
    state = torch.load(tmp_path / "model.pth", weights_only=True)
    model = import_generated(folder / "model").load_model()
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_bfloat16_from_keras_file(converted, tmp_path):
    """The .keras file gives the same dtypes and numbers as the SavedModel."""
    source, _, _ = converted
    source.save(tmp_path / "m.keras")
    to_ir(tmp_path / "m.keras", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    model = import_generated(tmp_path / "model").load_model(dtype=torch.float32)
    ids = _ids(3, 12)
    with torch.no_grad():
        ours = model(torch.from_numpy(ids)).numpy()
    expected = np.asarray(source(ids)).astype("float32")
    assert relative_error(ours, expected) < 3e-2


def test_large_bfloat16_variables_are_read_only_when_written(tmp_path):
    """A SavedModel's large bfloat16 variables stay in its checkpoint until to-ir writes them
    (as float32 ones do): the converter holds no weight's values (a 1e9-parameter model
    would not fit), and the weight is written with its bits."""
    import keras

    from codegen.frontends.tensorflow.to_ir import convert_model

    inputs = keras.Input((256,), dtype="bfloat16")
    model = keras.Model(inputs, keras.layers.Dense(256, dtype="bfloat16")(inputs))
    model.export(str(tmp_path / "saved"), verbose=False)
    _, converter = convert_model(tmp_path / "saved", None, None)
    kernel = next(s for s in converter.weight_sources.values() if s.aside)
    assert kernel.value is None
    value = converter.read_source(kernel)
    assert value.dtype.name == "bfloat16" and value.shape == (256, 256)
    assert np.array_equal(value.astype("float32"), model.weights[0].numpy().astype("float32"))
