"""A bfloat16 keras-hub Llama converts and runs in bfloat16 (issue 21, Scale).

`LlamaBackbone(..., dtype="bfloat16")` exported as a SavedModel: `codegen to-ir` then
`codegen build` (with its check run of the generated model) exit 0; the weights stay
bfloat16 (graph.json names the dtype, load_model() gives bfloat16 parameters); the rotary
frequencies and mask values the source keeps in float32 stay float32 buffers, and the rotary
cos/sin are computed in float32 then cast to the activations' dtype, as keras-hub does.

The bfloat16 forward is compared with TF's bfloat16 forward: measured equal to the bit on
these inputs (same roundings in the same order), the bar is 2e-2 of the output's range
(a few bfloat16 units in the last place, 2 ** -7 each: PyTorch's RMSNorm rounds the
normalised value before the scale where keras-hub rounds once, which may differ by one unit;
a wrong conversion is off by O(1), bfloat16 itself is 3e-2 away from float32 here).
load_model(dtype=torch.float32) matches a float32 copy of the source within 1e-4. Skipped
without keras-hub."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import codegen, relative_error

from codegen.frontends.tensorflow.compat import import_tf
from codegen.verify import import_generated

keras_hub = pytest.importorskip("keras_hub")

CONFIG = {"vocabulary_size": 100, "num_layers": 2, "num_query_heads": 4,
          "num_key_value_heads": 2, "hidden_dim": 64, "intermediate_dim": 128}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(the bfloat16 source, its float32 copy, the folder with ir/ and model/)."""
    import_tf()
    import keras

    folder = tmp_path_factory.mktemp("llama_bf16")
    keras.utils.set_random_seed(0)
    source = keras_hub.models.LlamaBackbone(**CONFIG, dtype="bfloat16")
    rng = np.random.default_rng(1)
    for variable in source.weights:  # away from the initial ones, still bfloat16
        variable.assign((variable.numpy().astype("float32")
                         + rng.normal(0, 0.2, variable.shape)).astype(variable.dtype))
    copy = keras_hub.models.LlamaBackbone(**CONFIG, dtype="float32")
    for target, weight in zip(copy.weights, source.weights, strict=True):
        target.assign(keras.ops.cast(weight, "float32"))  # exact
    source.export(str(folder / "saved"), verbose=False)
    result = codegen("to-ir", folder / "saved", "-o", folder / "ir", "-q")
    assert result.returncode == 0, result.stderr
    result = codegen("build", folder / "ir", "-o", folder / "model", "-q")  # with its check run
    assert result.returncode == 0, result.stderr
    return source, copy, folder


def _feeds(batch: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 100 + length)
    mask = np.ones((batch, length), "int32")
    mask[-1, length // 2 + 1:] = 0  # the last row partly padded
    return {"token_ids": rng.integers(0, 100, (batch, length)).astype("int32"),
            "padding_mask": mask}


def _run(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        out = model(**{key: torch.from_numpy(value) for key, value in feeds.items()})
    return out.float().numpy()


def test_weights_stay_bfloat16(converted) -> None:
    _, _, folder = converted
    weights = json.loads((folder / "ir" / "graph.json").read_text())["weights"]
    assert "bfloat16" in {entry["dtype"] for entry in weights.values()}
    model = import_generated(folder / "model").load_model()
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    buffers = dict(model.named_buffers())
    frequencies = [key for key in buffers if key.endswith("inv_freq")]
    assert frequencies and all(buffers[key].dtype == torch.float32 for key in frequencies)
    source = (folder / "model" / "model.py").read_text()
    assert "emb.cos().to(x.dtype)" in source and "apply_rotary_pos_emb(" in source


def test_bfloat16_forward_matches_tensorflow(converted) -> None:
    source, _, folder = converted
    model = import_generated(folder / "model").load_model()
    errors = []
    for batch, length in ((1, 1), (2, 7), (3, 12)):
        feeds = _feeds(batch, length)
        with torch.no_grad():
            ours = model(**{key: torch.from_numpy(value) for key, value in feeds.items()})
        assert ours.dtype == torch.bfloat16
        expected = np.asarray(source(feeds)).astype("float32")
        errors.append(relative_error(ours.float().numpy(), expected))
    assert max(errors) < 2e-2, errors


def test_float32_matches_a_float32_copy_of_the_source(converted) -> None:
    _, copy, folder = converted
    model = import_generated(folder / "model").load_model(dtype=torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for batch, length in ((1, 1), (2, 7), (3, 12)):
        feeds = _feeds(batch, length)
        assert relative_error(_run(model, feeds), np.asarray(copy(feeds))) < 1e-4
