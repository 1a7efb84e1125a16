"""TimeDistributed(layer) converts to the layer applied to batch x time folded together,
`layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])`, in each form Keras writes it: tf_keras's
reshapes, Keras 3's stack of steps (T known) and its vectorized_map (T unknown, a pfor
graph with a while loop inside). A video classifier (TimeDistributed Conv2D, BatchNorm,
GlobalAveragePooling2D and a nested Sequential, then an LSTM or GRU and a Dense) from
.keras, .h5 and SavedModel matches TensorFlow at two clip lengths (T unknown) or its
length (T known), batch 1 and 3, with the source's trainable parameter count."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_clean_error, codegen

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

SIZE, FIXED, LENGTHS, BATCHES = 10, 5, (4, 7), (1, 3)


def _video_classifier(keras_module, length, recurrent: str, size):
    K, L = keras_module, keras_module.layers
    K.utils.set_random_seed(0)
    clip = K.Input((length, size, size, 3), name="clip")
    x = L.TimeDistributed(L.Conv2D(4, 3, padding="same", activation="relu"))(clip)
    x = L.TimeDistributed(L.BatchNormalization())(x)
    x = L.TimeDistributed(L.GlobalAveragePooling2D())(x)
    x = L.TimeDistributed(K.Sequential([L.Dense(6, activation="relu"), L.Dense(5)]))(x)
    x = getattr(L, recurrent)(6)(x)
    model = K.Model(clip, L.Dense(3)(x))
    rng = np.random.default_rng(1)
    for weight in model.weights:  # biases, BN statistics and scales off 0 / 1
        if len(weight.shape) == 1:
            name = getattr(weight, "path", weight.name)
            low = 0.5 if "variance" in name else -0.5
            weight.assign(rng.uniform(low, low + 1, weight.shape).astype("float32"))
    return model


def _save(model, path, fmt: str, keras3: bool):
    if fmt == "savedmodel":
        if keras3:
            model.export(str(path / "saved"), verbose=False)
        else:
            model.save(str(path / "saved"), save_format="tf")
        return path / "saved"
    model.save(path / f"model.{fmt}")
    return path / f"model.{fmt}"


CASES = [("keras3", "keras", None), ("keras3", "keras", FIXED), ("keras3", "savedmodel", None),
         ("keras3", "savedmodel", FIXED), ("tf_keras", "h5", None), ("tf_keras", "h5", FIXED),
         ("tf_keras", "savedmodel", None), ("keras3", "keras", "images"),
         ("tf_keras", "h5", "images")]  # "images": frame sizes unknown too


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-T{c[2]}")
def test_video_classifier(case, tmp_path):
    flavour, fmt, length = case
    size = None if length == "images" else SIZE
    length = None if length == "images" else length
    import_tf()
    if flavour == "keras3":
        import keras as keras_module
    else:
        import tf_keras as keras_module
    model = _video_classifier(keras_module, length, "GRU" if flavour == "keras3" else "LSTM", size)
    path = _save(model, tmp_path, fmt, flavour == "keras3")
    if fmt == "savedmodel":  # in a process of its own: the functions Keras traced here
        result = codegen("to-ir", path, "-o", tmp_path / "ir")  # share their names
        assert result.returncode == 0, result.stderr
    else:
        to_ir(path, None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    torch_model = import_generated(tmp_path / "model").load_model()
    source = (tmp_path / "model" / "model.py").read_text()
    rng, worst = np.random.default_rng(2), 0.0
    for batch in BATCHES:
        for steps in (LENGTHS if length is None else (length,)):
            frame = SIZE if size is not None or batch == 1 else SIZE + 3  # any size
            clip = rng.normal(0, 1, (batch, steps, frame, frame, 3)).astype(np.float32)
            expected = np.asarray(model(clip, training=False))
            with torch.no_grad():
                ours = torch_model(torch.from_numpy(clip)).numpy()
            assert ours.shape == expected.shape
            worst = max(worst, float(np.abs(ours - expected).max() / np.abs(expected).max()))
    assert worst <= 1e-4, worst
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    assert sum(p.numel() for p in torch_model.parameters() if p.requires_grad) == trainable
    # each of the four layers on the folded steps, unfolded with sizes read at run time
    assert len(re.findall(r"\.flatten\(0, 1\)", source)) == 4, source
    assert len(re.findall(r"\.unflatten\(\s*0, \w+\.shape\[:2\]\s*\)", source)) == 4, source
    assert "nn.Conv2d(3, 4, kernel_size=3, padding=1)" in source
    assert "nn.BatchNorm2d(4, " in source
    assert ("nn.GRU(5, 6" if flavour == "keras3" else "nn.LSTM(5, 6") in source
    for noise in ("while", "torch.stack", ".reshape(", "[0]\n"):
        assert noise not in source.replace("lstm_h[0]", "").replace("gru_h[0]", ""), noise


def test_other_vectorized_map_is_refused_by_name(tmp_path):
    """A vectorized_map that is no TimeDistributed keeps pfor's fallback while loop: refused
    at to-ir with one line naming the loop, exit 4, nothing written."""
    tf = import_tf()

    class Rows(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def __call__(self, x):
            first = tf.cast(tf.abs(x[:, 0]) * 2, tf.int32) % 5 + 1
            return {"y": tf.vectorized_map(lambda args: args[0][args[1]: args[1] + 2] * 2.0,
                                           (x, first))}

    module = Rows()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.__call__)
    env = {k: v for k, v in os.environ.items() if k != "TF2_BEHAVIOR"}  # as a user runs it
    result = subprocess.run([sys.executable, "-m", "codegen.cli", "to-ir", tmp_path / "saved",
                             "-o", tmp_path / "ir"], capture_output=True, text=True, env=env,
                            timeout=120, check=False)  # (Keras sets TF2_BEHAVIOR here)
    assert_clean_error(result, 4, "pfor/while' (StatelessWhile)", "TimeDistributed")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ir").exists()
