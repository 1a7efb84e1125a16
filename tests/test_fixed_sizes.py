"""`codegen verify` draws inputs that fit the model: sizes the TF input spec fixes are kept
(a model exported with batch 3 is verified at batch 3; an input of shape (4,) gets 4 values),
only unknown sizes vary; every placeholder the outputs need is fed. It once fed batch 4 to
any model and ended in an internal error on a fixed batch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import codegen


def _dense_module(tf, shape):
    """x [shape] -> relu(x @ w + b) -> mean over axis 1, as a tf.function of fixed signature."""
    rng = np.random.default_rng(0)

    class Dense(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.normal(size=(16, 5)).astype("float32"), name="w")
            self.b = tf.Variable(rng.normal(size=(5,)).astype("float32"), name="b")

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.reduce_mean(tf.nn.relu(tf.einsum("btc,cd->btd", x, self.w) + self.b), 1)}

    return Dense()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    root = tmp_path_factory.mktemp("fixed")
    models = {"batch3": _dense_module(tf, [3, 16, 16]),
              "batch3_any_length": _dense_module(tf, [3, None, 16])}

    class Vector(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(1, 5, dtype="float32"), name="w")

        @tf.function(input_signature=[tf.TensorSpec([4], tf.float32, name="v")])
        def __call__(self, v):
            return {"y": tf.nn.relu(v * self.w)}

    models["vector4"] = Vector()
    for name, module in models.items():
        tf.saved_model.save(module, str(root / name), signatures={"serving_default": module.__call__})
    return root


def to_ir_and_build(source: Path, ir_dir: Path, out_dir: Path) -> None:
    """`codegen to-ir` and `codegen build`, in-process (the CLI runs the same functions)."""
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir

    to_ir(source, None, None, ir_dir, quiet=True)
    build(ir_dir, out_dir, quiet=True)


def convert_and_verify(root: Path, name: str) -> str:
    to_ir_and_build(root / name, root / f"{name}.ir", root / f"{name}.out")
    result = codegen("verify", root / name, root / f"{name}.out")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def verified_batches(stdout: str) -> list[tuple[int, list[int]]]:
    return [(int(batch), [int(s) for s in shape.split(",") if s.strip()])
            for batch, shape in re.findall(r"^batch (\d+): \S+ \[([\d, ]*)\]", stdout, re.MULTILINE)]


def test_fixed_batch_is_kept(saved_models):
    stdout = convert_and_verify(saved_models, "batch3")
    assert verified_batches(stdout) == [(3, [3, 5])], stdout  # nothing varies: one draw
    assert "ok: worst relative error" in stdout


def test_fixed_batch_unknown_length_varies_the_length_only(saved_models):
    stdout = convert_and_verify(saved_models, "batch3_any_length")
    assert verified_batches(stdout) == [(3, [3, 5]), (3, [3, 5])], stdout
    from codegen.sample_inputs import SEQUENCE_LENGTHS, random_inputs
    from codegen.verify import read_io

    io = read_io(saved_models / "batch3_any_length.out")
    shapes = [random_inputs(io, 4, 0, draw)["x"].shape for draw in (0, 1)]
    assert shapes == [(3, SEQUENCE_LENGTHS[0], 16), (3, SEQUENCE_LENGTHS[1], 16)]


def test_rank_one_input_of_fixed_size(saved_models):
    stdout = convert_and_verify(saved_models, "vector4")
    assert verified_batches(stdout) == [(4, [4])], stdout
    assert "ok: worst relative error" in stdout


def test_every_placeholder_the_outputs_need_is_fed(tmp_path):
    """A placeholder the IR does not read but TF's graph needs is fed too (drawn from its
    own TF shape and dtype), instead of TF's 'You must feed a value' as an internal error."""
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.verify import TFRunner

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6], name="x")
        pads = tf.compat.v1.placeholder(tf.int32, [2, 2], name="pads")
        unused = 0.0 * tf.cast(tf.reduce_sum(pads), tf.float32)
        tf.identity(tf.nn.relu(x) + unused, name="output")
    tf.io.write_graph(graph.as_graph_def(), str(tmp_path), "two.pb", as_text=False)
    runner = TFRunner(tmp_path / "two.pb", None)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6)).astype(np.float32)
    np.testing.assert_array_equal(runner.run(["output"], {"x": x})[0], np.maximum(x, 0))


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_keras_conv1d_with_its_bias_builds_and_runs_by_keyword(tmp_path, kind):
    """A Keras Conv1D (ExpandDims -> Conv2D -> Squeeze -> BiasAdd) once ended in
    KeyError 'bias_add'. It builds, matches Keras at batch 1 and 3 and two lengths, keeps
    Keras's parameter count, and takes its input by the Keras name: model(chars=...)."""
    import keras
    import torch

    from codegen.verify import import_generated

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 2), name="chars")
    features = keras.layers.Conv1D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling1D()(features))
    source = tmp_path / ("conv1d.keras" if kind == "keras" else "conv1d")
    if kind == "keras":
        model.save(source)
    else:
        model.export(str(source), verbose=False)
    to_ir_and_build(source, tmp_path / "ir", tmp_path / "out")
    ours = import_generated(tmp_path / "out").load_model()
    assert sum(p.numel() for p in ours.parameters()) == model.count_params() == 28
    rng = np.random.default_rng(1)
    for batch, length in ((1, 9), (3, 5)):
        chars = rng.uniform(-1, 1, (batch, length, 2)).astype(np.float32)
        with torch.no_grad():
            got = ours(chars=torch.from_numpy(chars)).numpy()
        expected = model(keras.ops.convert_to_tensor(chars)).numpy()
        assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-5
