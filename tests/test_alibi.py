"""Bloom's ALiBi reads as Hugging Face's build_alibi_tensor style (issue 21): keras-hub's
AlibiBias (slopes[:, None] * cast(range(1 - K, 1)) expanded and added to the scores) is an
`AlibiBias` module whose `slopes` buffer holds keras-hub's per-head slopes and whose forward
is one visible bias line (rewrites/alibi.py, checked on TF). The tiny Bloom of
tests/test_keras_hub_sizes.py from the SavedModel, compared with TF at lengths 1, 7 and 12,
batch 1 and 3, padding partly zero, and through torch.export with batch and length
dynamic. Skipped without keras-hub."""

from __future__ import annotations

import numpy as np
import pytest
from test_keras_hub_sizes import _errors, _exports
from test_keras_hub_sizes import _model as _sizes_model
from test_transformers import _convert

keras_hub = pytest.importorskip("keras_hub")


def test_bloom_alibi_is_one_module(tmp_path_factory) -> None:
    from keras_hub.src.layers.modeling.alibi_bias import AlibiBias

    model, paths = _sizes_model("bloom", tmp_path_factory)
    torch_model, source = _convert(paths["savedmodel"], tmp_path_factory.mktemp("bloom_out"))
    assert source.count("class AlibiBias(nn.Module):") == 1
    assert "return scores + self.slopes[:, None, None] * positions" in source
    assert source.count("AlibiBias(2)") == 2  # one per layer
    assert "alibi_bias_1_2" not in source and ".unflatten(0, (2, 1))" not in source
    slopes = [buffer for name, buffer in torch_model.named_buffers() if name.endswith("slopes")]
    assert len(slopes) == 2 and not any(name.endswith("slopes")
                                        for name, _ in torch_model.named_parameters())
    expected = np.asarray(AlibiBias()._get_slopes(2), "float32")
    for value in slopes:
        np.testing.assert_array_equal(value.numpy(), expected)
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors
    _exports(torch_model, [tensor.name for tensor in model.inputs])
