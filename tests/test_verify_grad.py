"""Fine-tuning parity: `verify --grad`, `verify --train` and one SGD step, PyTorch against TF.

Tiny models (the TF-slim ResNet V2 of conftest, a small Keras CNN with BatchNorm and
dropout) so the file runs in well under a minute; every check is also shown to fail.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import codegen, copy_with_scaled_channel

from codegen.cli import main as cli_main

SIZE = 12
TOLERANCE = 1e-4


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """The command line in this process (TensorFlow is imported once for the file)."""
    code = cli_main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the small Keras CNN ----------------------------------------------------------------------
def small_cnn():
    """Conv-BN-ReLU twice, dropout, dense. Its moving statistics are moved away from what
    one batch gives (mean + 0.3, variance x 2), so a missed or mis-weighted BatchNorm
    update in training mode shows."""
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.zoo.keras_apps import calibrate_batch_norm

    import_tf()
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 3, strides=2, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.Activation("relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5, name="dropout")(x)  # named: Keras numbers unnamed layers per process
    outputs = layers.Dense(4, name="fc")(x)
    model = keras.Model(inputs, outputs)
    calibrate_batch_norm(model, SIZE, seed=5)
    for layer in (model.get_layer("bn1"), model.get_layer("bn2")):
        layer.moving_mean.assign(layer.moving_mean + 0.3)
        layer.moving_variance.assign(layer.moving_variance * 2.0)
    return model


@pytest.fixture(scope="module")
def keras_cnn(tmp_path_factory):
    """(the .keras file, the generated model folder); BatchNorm momentum 0.99 = Keras'."""
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir

    folder = tmp_path_factory.mktemp("keras_cnn")
    path = folder / "cnn.keras"
    small_cnn().save(path)
    to_ir(path, None, None, folder / "ir", bn_decay=0.99, quiet=True)
    build(folder / "ir", folder / "model", quiet=True)
    return path, folder / "model"


# -- verify --grad ----------------------------------------------------------------------------
def test_grad_on_the_tiny_resnet_passes(tiny_checkpoint, tiny_build):
    result = codegen("verify", f"{tiny_checkpoint}.meta", tiny_build / "model", "--grad")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "gradients of sum(output * R): the 12 worst of 61" in out
    assert "grad: 1 inputs and 60 parameters compared" in out
    assert "not compared (buffer (not trained by gradients)): 48" in out
    assert "block2.2.conv2.conv.weight" in out or "block1.0.conv2.conv.weight" in out
    assert "Gradients are judged against 0.0001 = max(tolerance, floor)" in out
    assert "ok: gradients within 0.0001" in out


def test_grad_names_a_corrupted_weight(tiny_checkpoint, tiny_build, tmp_path, capsys):
    key = "block2.1.conv2.conv.weight"
    broken = copy_with_scaled_channel(tiny_build / "model", tmp_path / "model", key,
                                      channel=3, factor=1.2)
    code, out, err = run_cli(capsys, "verify", f"{tiny_checkpoint}.meta", broken, "--grad")
    assert code == 8, out + err
    assert f"first over the limit in graph order: {key} (TF " in out
    first = err.splitlines()[0]
    assert first.startswith("codegen: error: fine-tuning would not start where TensorFlow does")
    assert f"grad: first over the limit in graph order: {key} (TF resnet_v2_tiny/" in first
    assert "forward output:" in err  # the other reasons follow, indented
    assert "Traceback" not in err


def test_grad_catches_what_only_the_backward_gets_wrong(tiny_checkpoint, tiny_build,
                                                        tmp_path, capsys):
    """A `.detach()` after the stem: the forward is exact, so plain verify passes; the stem
    gets no gradient, which --grad names."""
    from codegen.verify import verify

    edited = tmp_path / "model"
    shutil.copytree(tiny_build / "model", edited)
    source = (edited / "model.py").read_text()
    stem = "self.pool1(self.conv1(x))"
    assert source.count(stem) == 1
    (edited / "model.py").write_text(source.replace(stem, f"{stem}.detach()"))
    meta = Path(f"{tiny_checkpoint}.meta")
    assert all(r.rel_error < 1e-5 for r in verify(meta, None, edited, batches=(2,),
                                                   float64=False))
    code, out, err = run_cli(capsys, "verify", meta, edited, "--grad")
    assert code == 8, out + err
    assert ("first over the limit in graph order: conv1.weight (TF resnet_v2_tiny/conv1/"
            "weights:0): gradient 1, value 0") in out
    assert "forward output" not in err  # the forward is right; the gradients are not


def test_grad_figures_see_the_corruption(tiny_checkpoint, tiny_build, tmp_path):
    """Not only the value column: the gradients upstream of the broken conv differ too."""
    from codegen.verify.grad import verify_grad

    broken = tmp_path / "model"
    shutil.copytree(tiny_build / "model", broken)
    key = "block2.1.conv2.conv.weight"
    kernel = np.load(broken / "weights" / f"{key}.npy")
    kernel[3] *= 1.2
    np.save(broken / "weights" / f"{key}.npy", kernel)
    report = verify_grad(Path(f"{tiny_checkpoint}.meta"), None, broken)
    rows = {row.name: row for row in report.rows}
    assert [name for name, row in rows.items() if (row.value_rel or 0) > 0] == [key]
    assert rows["conv1.weight"].grad_rel > 1e-3  # upstream: backpropagated through it
    assert rows["input input"].grad_rel > 1e-3


def test_grad_on_a_keras_cnn_passes(keras_cnn, capsys):
    path, out_dir = keras_cnn
    code, out, err = run_cli(capsys, "verify", path, out_dir, "--grad")
    assert code == 0, out + err
    assert "grad: 1 inputs and 9 parameters compared" in out  # every parameter, BN ones too
    assert "not compared (buffer (not trained by gradients)): 6" in out


def test_grad_on_the_keras_savedmodel_passes(keras_cnn, tmp_path):
    """The same CNN exported as a SavedModel: its weights are Consts named `unknown_N`."""
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify.grad import verify_grad
    from codegen.verify.train import load_keras

    path, _ = keras_cnn
    load_keras(path).export(str(tmp_path / "saved"), verbose=False)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", bn_decay=0.99, quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    report = verify_grad(tmp_path / "saved", None, tmp_path / "model")
    assert len([row for row in report.rows if row.value_rel is not None]) == 9
    assert not report.uncompared_parameters() and not report.problems(TOLERANCE)


def test_untied_parameters_are_reported():
    from codegen.verify.param_map import ParamSource, untied

    entries = [ParamSource(key, tensor, "", [], "", False) for key, tensor in
               (("fc.weight", "fc/weights:0"), ("fc_2.weight", "fc/weights:0"),
                ("fc.bias", "fc/biases:0"), ("norm.running_mean", "fc/weights:0"))]
    parameters = {"fc.weight", "fc_2.weight", "fc.bias"}
    assert untied(entries, parameters) == {"fc/weights:0": ["fc.weight", "fc_2.weight"]}


def test_keras_variables_are_matched_by_source_else_by_unique_content():
    from types import SimpleNamespace

    from codegen.verify.param_map import ParamSource, array_sha256, keras_variable_keys

    def variable(path, value):
        return SimpleNamespace(path=path, numpy=lambda: np.asarray(value, np.float32))

    mean, var, zeros = [0.1, 0.2], [1.0, 2.0], [0.0, 0.0]
    variables = [variable("bn/moving_mean", mean), variable("bn/moving_variance", var),
                 variable("conv/bias", zeros), variable("dense/bias", zeros)]
    sha = {name: array_sha256(np.asarray(v, np.float32))
           for name, v in (("mean", mean), ("var", var), ("zeros", zeros))}
    old = [ParamSource("bn.running_mean", "", "", [], sha["mean"], True),
           ParamSource("bn.running_var", "", "", [], sha["var"], True),
           ParamSource("conv.bias", "", "", [], sha["zeros"], True),
           ParamSource("fc.bias", "", "", [], sha["zeros"], True)]
    mapping, how = keras_variable_keys(old, variables)
    assert mapping == {"bn/moving_mean": "bn.running_mean", "bn/moving_variance": "bn.running_var"}
    assert how.startswith("content")  # the two zero biases are ambiguous: left out
    new = [ParamSource(e.key, "", source, [], e.sha256, False) for e, source in
           zip(old, ("bn/moving_mean", "bn/moving_variance", "conv/bias", "dense/bias"))]
    mapping, how = keras_variable_keys(new, variables)
    assert mapping["conv/bias"] == "conv.bias" and mapping["dense/bias"] == "fc.bias"
    assert how == "index.json 'source'"


def test_index_json_with_source_tensor_and_transforms(tiny_checkpoint, tiny_build, tmp_path):
    """The current index.json fields: `tensor` and `transforms` are used, and a weight whose
    transforms are not a pure layout change is listed as not compared."""
    import ast

    from codegen.verify.grad import verify_grad

    model = tmp_path / "model"
    shutil.copytree(tiny_build / "model", model)
    index_path = model / "weights" / "index.json"
    index = json.loads(index_path.read_text())
    for info in index.values():
        transforms = info["fingerprint"].partition(":")[2]
        info["source"] = info["tf_name"]
        info["tensor"] = f"{info['tf_name']}:0" if info["tf_name"] else ""
        parsed = ast.literal_eval(transforms) if transforms.startswith("[") else []
        info["transforms"] = [[kind, list(argument)] for kind, argument in parsed]
    index["conv1.weight"]["transforms"].append(["fold_batch_norm", "resnet_v2_tiny/x"])
    index_path.write_text(json.dumps(index))
    report = verify_grad(Path(f"{tiny_checkpoint}.meta"), None, model)
    assert ("conv1.weight", "computed from its source, not a re-layout") in report.not_compared
    assert len([row for row in report.rows if row.value_rel is not None]) == 59
    assert max(row.grad_rel for row in report.rows) < TOLERANCE
    assert not report.notes  # no fallback to tf_name + fingerprint


# -- verify --train ---------------------------------------------------------------------------
def test_train_on_a_keras_cnn_passes(keras_cnn, capsys):
    path, out_dir = keras_cnn
    code, out, err = run_cli(capsys, "verify", path, out_dir, "--train")
    assert code == 0, out + err
    assert "dropout switched off for the comparison: Keras dropout (rate 0.5)" in out
    assert "the generated model has no dropout" in out
    assert "BatchNorm statistics after one training step" in out
    for key in ("bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"):
        assert key in out
    assert "unbiased batch variance (x n/(n-1))" in out
    assert "ok: training mode within 0.0001" in out


def test_train_figures(keras_cnn):
    from codegen.verify.train import verify_train

    path, out_dir = keras_cnn
    report = verify_train(path, out_dir)
    assert all(row.rel < 1e-5 for row in report.outputs), report.outputs
    assert all(row.tf_vs_f64 < 1e-5 and row.ours_vs_f64 < 1e-5 for row in report.outputs)
    by_key = {row.key: row for row in report.stats}
    assert by_key["bn1.running_var"].values_per_channel == 4 * SIZE * SIZE
    assert by_key["bn2.running_var"].values_per_channel == 4 * 5 * 5
    for row in report.stats:
        assert row.step_rel < TOLERANCE and row.state_rel < TOLERANCE, row
        assert row.momentum == (pytest.approx(0.01), pytest.approx(0.01))
    for key, n in (("bn1.running_var", 4 * SIZE * SIZE), ("bn2.running_var", 100)):
        # Keras' own (biased) variance is off by the factor n/(n-1) on the batch part
        assert by_key[key].uncorrected_step_rel == pytest.approx(1 / (n - 1), rel=0.2)


def test_train_reports_a_wrong_momentum(keras_cnn, tmp_path):
    from codegen.verify.train import verify_train

    path, out_dir = keras_cnn
    edited = tmp_path / "model"
    shutil.copytree(out_dir, edited)
    source = (edited / "model.py").read_text()
    assert source.count("momentum=0.01") == 2
    (edited / "model.py").write_text(source.replace("momentum=0.01", "momentum=0.003", 1))
    failures = verify_train(path, edited).failures(TOLERANCE)
    assert failures and all(line.startswith("bn1.") for line in failures)
    assert "PyTorch momentum 0.003, Keras momentum 0.99 means 0.01" in failures[0]


def test_train_without_a_mapping_is_one_clear_error(keras_cnn, tmp_path):
    from codegen.errors import InputError
    from codegen.verify.train import verify_train

    path, out_dir = keras_cnn
    old = tmp_path / "model"
    shutil.copytree(out_dir, old)
    index = json.loads((old / "weights" / "index.json").read_text())
    entry = index["bn1.running_mean"]  # an older index.json: no source, and a content no
    for field in ("source", "tensor", "transforms"):  # variable has
        entry.pop(field, None)
    entry["fingerprint"] = "0" * 64 + ":[]"
    (old / "weights" / "index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match=r"no PyTorch buffer found for the Keras variables "
                                         r"bn1/moving_mean \(matched by "):
        verify_train(path, old)


def test_train_needs_the_keras_file(tiny_checkpoint, tiny_build, capsys):
    code, _, err = run_cli(capsys, "verify", f"{tiny_checkpoint}.meta", tiny_build / "model",
                             "--train")
    assert code == 3 and "Traceback" not in err
    assert err.strip() == (f"codegen: error: {tiny_checkpoint}.meta: --train needs the Keras "
                           "file (.keras or .h5): a SavedModel, frozen graph or checkpoint "
                           "holds only the inference function, not the layers' training mode")


# -- one optimizer step -----------------------------------------------------------------------
def test_one_sgd_step_on_the_tiny_resnet(tiny_checkpoint, tiny_build):
    """tf.gradients, w - 0.1 g in numpy, against torch.optim.SGD: every weight after it."""
    from codegen.verify.grad import verify_grad
    from codegen.verify.sgd_step import sgd_step

    report = verify_grad(Path(f"{tiny_checkpoint}.meta"), None, tiny_build / "model")
    moved = {key: np.abs(0.1 * grad).max() / np.abs(report.tf_values[key]).max()
             for key, grad in report.tf_grads.items()}
    assert all(row.tf_vs_f64 < 1e-5 and row.ours_vs_f64 < 1e-5 for row in report.rows)
    assert 0 < report.noise_floor < 1e-5  # a smooth point: the check stays at the tolerance
    errors = sgd_step(report, lr=0.1)
    assert len(errors) == 60 and set(errors) == set(moved)
    assert max(errors.values()) < TOLERANCE, max(errors.items(), key=lambda item: item[1])
    assert np.median(list(moved.values())) > 0.01  # the step really moved the weights


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_one_sgd_step_on_a_keras_cnn(keras_cnn, training):
    """Keras' SGD optimizer against torch.optim.SGD, in eval mode and in training mode
    (BatchNorm on batch statistics), dropout off."""
    from codegen.verify import import_generated, random_inputs, read_io
    from codegen.verify.param_map import read_index
    from codegen.verify.sgd_step import keras_sgd_step
    from codegen.verify.train import load_keras, switch_off_dropout

    path, out_dir = keras_cnn
    keras_model = load_keras(path)
    model = import_generated(out_dir).load_model(out_dir / "weights", fused=False)
    switch_off_dropout(keras_model, model)
    io = read_io(out_dir)
    feeds = random_inputs(io, 4, seed=2)
    multipliers = [np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32)]
    errors = keras_sgd_step(keras_model, model, read_index(out_dir), io, feeds, multipliers,
                            lr=0.1, training=training)
    assert len(errors) == 9
    assert max(errors.values()) < TOLERANCE, errors


# -- shared weights (TF1 reuse): fixed on main ------------------------------------------------
def shared_fc_checkpoint(folder):
    """One fully connected layer applied twice through variable_scope('fc', AUTO_REUSE)."""
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    v1 = tf.compat.v1
    prefix = folder / "shared.ckpt"
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 6], name="input")

        def fc(h):
            with v1.variable_scope("fc", reuse=v1.AUTO_REUSE):
                w = v1.get_variable("weights", [6, 6],
                                    initializer=v1.random_normal_initializer(seed=1))
                b = v1.get_variable("biases", [6], initializer=v1.random_normal_initializer(seed=2))
            return tf.nn.relu(tf.nn.bias_add(tf.matmul(h, w), b))

        tf.identity(fc(fc(x)), name="output")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(prefix))
    return prefix


def test_grad_on_a_layer_applied_twice(tmp_path, capsys):
    prefix = shared_fc_checkpoint(tmp_path)
    assert run_cli(capsys, "to-ir", f"{prefix}.meta", "--dst-node", "output", "-o",
                   tmp_path / "ir")[0] == 0
    assert run_cli(capsys, "build", tmp_path / "ir", "-o", tmp_path / "model")[0] == 0
    code, out, err = run_cli(capsys, "verify", f"{prefix}.meta", tmp_path / "model", "--grad")
    assert "untied" not in out + err
    assert code == 0, out + err
