"""`x + 0.0` and `x * 1.0` (Keras' Rescaling with no offset or no scale) are dropped from
the generated code; the other scales and offsets stay, and the model still equals TF."""

from __future__ import annotations

import re

import numpy as np
import torch

from codegen.backends.pytorch.build import build
from codegen.verify import import_generated


def test_rescaling_without_offset_or_scale_writes_no_identity_arithmetic(tmp_path):
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.frontends.tensorflow.to_ir import to_ir

    import_tf()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # offset 0.0
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.Rescaling(1.0, offset=-0.5)(x)  # scale 1.0
    model = keras.Model(inputs, keras.layers.Rescaling(3.0, offset=0.25)(x))
    model.export(str(tmp_path / "saved"), verbose=False)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    text = (tmp_path / "model" / "model.py").read_text()
    forward = text[text.index("def forward(self, keras_tensor"):text.index("def build_model")]
    assert not re.search(r"(\+=?|-=?) 0\.0\b|(\*=?|/=?) 1\.0\b", forward), forward
    assert "0.5" in forward and "3.0" in forward and "0.25" in forward, forward

    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = model(images).numpy()
    with torch.no_grad():
        ours = import_generated(tmp_path / "model").load_model()(
            torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(ours.transpose(0, 2, 3, 1), expected, rtol=1e-5, atol=1e-5)
