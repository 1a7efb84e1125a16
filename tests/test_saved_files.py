"""A SavedModel is read from its files: the signature's graph from saved_model.pb, each
variable from the checkpoint when the converter asks for it (saved_files.py).

`tf.saved_model.load` imported all of TensorFlow and restored every variable first (1.6 GB
for BERT-base before conversion began). These tests convert SavedModels written by Keras
and by `tf.saved_model.save`, check that the weights never enter the graph, that the
numbers still match TensorFlow, and that a model this reader does not handle (an RNN's
loop takes its variables) is still converted through the old path.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from conftest import codegen, load_generated, relative_error

from codegen.frontends.tensorflow import saved_files
from codegen.frontends.tensorflow.compat import import_tf, import_tf_core
from codegen.frontends.tensorflow.loader import load_model


def keras_savedmodel(path):
    """Dense(256) -> relu -> Dense(4) on 128 features, exported; returns (model, path)."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((128,), name="features")
    hidden = keras.layers.Dense(256, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(hidden))
    model.export(str(path), verbose=False)
    return model, path


def module_savedmodel(path):
    """A tf.Module saved with tf.saved_model.save: one variable read twice (tied) and a
    captured constant; returns (the numpy function it computes, path)."""
    tf = import_tf()
    rng = np.random.default_rng(5)
    weight = rng.normal(0, 0.3, (64, 64)).astype(np.float32)
    offset = rng.normal(0, 1, (64,)).astype(np.float32)

    class Tied(tf.Module):
        def __init__(self):
            super().__init__()
            self.weight = tf.Variable(weight, name="weight")
            self.offset = tf.constant(offset)

        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
        def __call__(self, x):
            hidden = tf.nn.relu(tf.matmul(x, self.weight) + self.offset)
            return {"y": tf.matmul(hidden, self.weight)}

    module = Tied()
    tf.saved_model.save(module, str(path), signatures=module.__call__)

    def reference(x):
        return np.maximum(x @ weight + offset, 0) @ weight

    return reference, path


def test_keras_savedmodel_weights_stay_in_the_checkpoint(tmp_path):
    model, path = keras_savedmodel(tmp_path / "dense")
    loaded = load_model(path, weights_aside=True)
    kernel = next(op for op in loaded.graph.get_operations()
                  if loaded.source_names.get(op.name) == "hidden/kernel")
    value = kernel.get_attr("value")
    assert not value.tensor_content and list(value.float_val) == [0.0]  # not the weights
    np.testing.assert_array_equal(loaded.aside[kernel.name], model.get_layer("hidden").kernel.numpy())

    assert codegen("to-ir", path, "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "out").returncode == 0
    x = np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32)
    ours = load_generated(tmp_path / "out").load_model()(torch.from_numpy(x)).detach().numpy()
    assert relative_error(ours, np.asarray(model(x))) < 1e-5


def test_to_ir_of_a_savedmodel_does_not_import_all_of_tensorflow(tmp_path):
    _, path = keras_savedmodel(tmp_path / "dense")
    code = (f"import sys; from codegen.frontends.tensorflow.to_ir import convert_model;"
            f"_, converter = convert_model({str(path)!r}, None, None);"
            f"print(len(converter.weight_sources), 'keras' in sys.modules, 'tensorflow.python.saved_model.load' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["4", "False", "False"]


def test_tf_module_savedmodel_keeps_its_tied_variable(tmp_path):
    reference, path = module_savedmodel(tmp_path / "tied")
    assert saved_files.load(import_tf_core(), path, "serving_default") is not None
    assert codegen("to-ir", path, "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "out").returncode == 0
    model = load_generated(tmp_path / "out").load_model()
    # one weight read twice (untied it would be two), and the constant as the first bias
    assert sum(p.numel() for p in model.parameters()) == 64 * 64 + 64
    x = np.random.default_rng(1).normal(size=(2, 64)).astype(np.float32)
    ours = model(torch.from_numpy(x)).detach().numpy()
    assert relative_error(ours, reference(x)) < 1e-5


def test_a_loop_over_variables_takes_the_loading_path(tmp_path):
    import keras

    inputs = keras.Input((5, 3), name="sequence")
    model = keras.Model(inputs, keras.layers.LSTM(4, name="lstm")(inputs))
    model.export(str(tmp_path / "lstm"), verbose=False)
    assert saved_files.load(import_tf_core(), tmp_path / "lstm", "serving_default") is None
    assert codegen("to-ir", tmp_path / "lstm", "-o", tmp_path / "ir").returncode == 0
