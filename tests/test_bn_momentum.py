"""Each BatchNorm keeps its own momentum: a Keras CNN with a momentum=0.9 and a momentum=0.99
BatchNormalization, from `.keras` (Keras 3), `.h5` and a SavedModel (tf_keras), and a Keras 3
`model.export()`; TF-slim graphs exported for training and for inference; a repeated block
whose two instances differ in momentum. `verify --train` compares the moving statistics
after one training step with Keras at 1e-4 (with one momentum for the model, bn2's moved
0.13 away from Keras')."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from codegen.cli import main as cli_main

SIZE = 12
TOLERANCE = 1e-4
MOMENTA = {"bn1": 0.9, "bn2": 0.99}  # Keras momentum; PyTorch's is 1 - momentum


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli_main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def two_momentum_cnn(keras):
    """Conv-BN(0.9)-ReLU, Conv-BN(0.99)-ReLU, Dense; `keras` is Keras 3 or tf_keras. The
    moving statistics are set away from what a batch gives, so each update shows."""
    layers = keras.layers
    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(momentum=MOMENTA["bn1"], name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(8, 3, strides=2, name="conv2")(x)
    x = layers.BatchNormalization(momentum=MOMENTA["bn2"], name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    outputs = layers.Dense(4, name="fc")(layers.Flatten(name="flatten")(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for name in MOMENTA:
        layer = model.get_layer(name)
        layer.moving_mean.assign(rng.normal(size=8).astype("float32") * 0.3)
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=8).astype("float32"))
    return model


def repeated_blocks(keras):
    """Three residual blocks of one structure; block1's BatchNorms have momentum 0.9, the
    others 0.99: one class that takes the momentum as a constructor argument."""
    layers = keras.layers
    keras.utils.set_random_seed(1)

    def block(x, name, momentum):
        y = layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
        y = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn1")(y)
        y = layers.ReLU(name=f"{name}_relu")(y)
        y = layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn2")(y)
        return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))

    inputs = keras.Input((SIZE, SIZE, 8))
    x = block(inputs, "block1", 0.9)
    x = block(x, "block2", 0.99)
    x = block(x, "block3", 0.99)
    return keras.Model(inputs, layers.GlobalAveragePooling2D(name="pool")(x))


def convert(source, folder, *args):
    """to-ir and build; returns (the model folder, what to-ir printed on stderr)."""
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir

    bn_decay = float(args[1]) if args[:1] == ("--bn-decay",) else None
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        to_ir(source, None, None, folder / "ir", bn_decay=bn_decay)
    build(folder / "ir", folder / "model", quiet=True)
    return folder / "model", stderr.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """format -> (the source, the generated model folder, to-ir's stderr)."""
    from codegen.frontends.tensorflow.compat import import_tf

    import_tf()
    import keras
    import tf_keras

    folder = tmp_path_factory.mktemp("bn_momentum")
    model = two_momentum_cnn(keras)
    model.save(folder / "cnn.keras")
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(folder / "export"))
    model = two_momentum_cnn(tf_keras)
    model.save(folder / "cnn.h5")
    model.save(folder / "saved", save_format="tf")
    repeated_blocks(keras).save(folder / "blocks.keras")
    found = {}
    for fmt, name in (("keras", "cnn.keras"), ("h5", "cnn.h5"), ("tf_keras_savedmodel", "saved"),
                      ("keras3_export", "export"), ("blocks", "blocks.keras")):
        found[fmt] = (folder / name, *convert(folder / name, folder / f"out_{fmt}"))
    return found


def batch_norm_lines(model_dir) -> list[str]:
    return re.findall(r"self\.(\w+) = nn\.BatchNorm2d\((.*)\)", (model_dir / "model.py").read_text())


# -- the momenta each source records ------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["keras", "h5", "tf_keras_savedmodel"])
def test_each_batch_norm_has_its_own_momentum(sources, fmt):
    _, model_dir, err = sources[fmt]
    assert batch_norm_lines(model_dir) == [("bn1", "8, eps=0.001, momentum=0.1"),
                                           ("bn2", "8, eps=0.001, momentum=0.01")]
    assert "momentum" not in err  # every layer's own: nothing assumed


def test_the_savedmodel_gives_the_model_py_of_the_h5_file(sources):
    """tf_keras: the same model.py from `.h5` and from the SavedModel, but for the source's
    file name in the docstring."""
    texts = [(sources[fmt][1] / "model.py").read_text().replace(sources[fmt][0].name, "SOURCE")
             for fmt in ("h5", "tf_keras_savedmodel")]
    assert texts[0] == texts[1]


def test_a_keras3_export_records_no_momentum_and_says_what_was_assumed(sources):
    """`model.export()` keeps the inference function only: no layer config, no update."""
    _, model_dir, err = sources["keras3_export"]
    assert err.strip() == ("note: BatchNorm momentum not recorded in this SavedModel: assumed "
                           "TF-slim's decay 0.997 for 2 layers; pass --bn-decay to set it")
    assert [args for _, args in batch_norm_lines(model_dir)] == ["8, eps=0.001, momentum=0.003"] * 2


@pytest.mark.parametrize("fmt", ["keras3_export", "keras"])
def test_bn_decay_sets_every_layer(sources, fmt, capsys, tmp_path):
    source = sources[fmt][0]
    code, _, err = run_cli(capsys, "to-ir", source, "-o", tmp_path / "ir", "--bn-decay", "0.95")
    assert code == 0, err
    assert "momentum" not in err
    model_dir, _ = convert(source, tmp_path / "built", "--bn-decay", "0.95")
    assert [args for _, args in batch_norm_lines(model_dir)] == ["8, eps=0.001, momentum=0.05"] * 2


def test_bn_decay_out_of_range_is_a_usage_error(sources, capsys, tmp_path):
    code, _, err = run_cli(capsys, "to-ir", sources["keras"][0], "-o", tmp_path / "ir",
                           "--bn-decay", "1.5")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("codegen: error: --bn-decay 1.5: a decay is between 0 and 1 (Keras' "
                           "default momentum is 0.99, TF-slim's decay 0.997)")
    assert not (tmp_path / "ir").exists()


def test_keras_metadata_is_read_without_keras(sources):
    from codegen.frontends.tensorflow.bn_decay import from_keras_metadata

    assert from_keras_metadata(sources["tf_keras_savedmodel"][0]) == MOMENTA
    assert from_keras_metadata(sources["keras3_export"][0]) is None


# -- one training step against Keras -----------------------------------------------------------
@pytest.mark.parametrize("fmt,keras_file", [("keras", "keras"), ("h5", "h5"),
                                            ("tf_keras_savedmodel", "h5"), ("blocks", "blocks")])
def test_train_matches_keras_with_each_layers_momentum(sources, fmt, keras_file):
    """Training-mode output and every moving statistic after one step within 1e-4 of Keras
    (`verify --train` needs the Keras file: the SavedModel's conversion is checked against
    the `.h5` of the same model)."""
    from codegen.verify.train import verify_train

    report = verify_train(sources[keras_file][0], sources[fmt][1])
    assert not report.failures(TOLERANCE), report.failures(TOLERANCE)
    assert report.stats and all(row.rel < TOLERANCE for row in report.outputs)
    for row in report.stats:
        expected, ours = row.momentum
        assert ours == pytest.approx(expected, abs=1e-9), row
        assert row.step_rel < TOLERANCE and row.state_rel < TOLERANCE, row
    momenta = {row.key.rpartition(".running")[0]: row.momentum[1] for row in report.stats}
    if fmt != "blocks":
        assert momenta == {"bn1": pytest.approx(0.1), "bn2": pytest.approx(0.01)}


def test_train_cli_passes(sources, capsys):
    source, model_dir, _ = sources["keras"]
    code, out, err = run_cli(capsys, "verify", source, model_dir, "--train")
    assert code == 0, out + err
    assert "ok: training mode within 0.0001" in out


def test_a_repeated_block_takes_its_momentum_as_an_argument(sources):
    text = (sources["blocks"][1] / "model.py").read_text()
    assert text.count("nn.BatchNorm2d(8, eps=0.001, momentum=momentum)") == 2
    assert re.findall(r"self\.block\d = Block\((.*)\)", text) == [
        "momentum=0.1", "momentum=0.01", "momentum=0.01"]


# -- TF-slim graphs ---------------------------------------------------------------------------
def slim_checkpoint(prefix, is_training: bool):
    """Two fused TF-slim batch norms, decay 0.95 and 0.9, in a graph built for training or
    for inference."""
    from codegen.frontends.tensorflow.compat import import_slim, import_tf

    tf = import_tf()
    slim = import_slim()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        with slim.arg_scope([slim.batch_norm], is_training=is_training):
            for scope, decay in (("c1", 0.95), ("c2", 0.9)):
                x = slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm,
                                normalizer_params={"decay": decay}, scope=scope)
        tf.identity(x, name="output")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(prefix))
    return prefix


@pytest.mark.parametrize("is_training", [True, False], ids=["training_graph", "inference_graph"])
def test_slim_decay_from_the_training_graph(is_training, capsys, tmp_path):
    prefix = slim_checkpoint(tmp_path / "slim.ckpt", is_training)
    code, _, err = run_cli(capsys, "to-ir", f"{prefix}.meta", "--dst-node", "output",
                           "-o", tmp_path / "ir")
    assert code == 0, err
    nodes = json.loads((tmp_path / "ir" / "graph.json").read_text())["nodes"]
    momenta = [node["attrs"]["momentum"] for node in nodes if node["op"] == "batch_norm"]
    if is_training:  # the AssignMovingAvg updates hold each layer's decay
        assert momenta == [0.05, 0.1]
        assert "momentum not recorded" not in err
    else:
        assert momenta == [0.003, 0.003]
        assert ("note: BatchNorm momentum not recorded in this checkpoint's graph (exported "
                "with is_training=False): assumed TF-slim's decay 0.997 for 2 layers; pass "
                "--bn-decay to set it") in err


def test_nested_and_custom_layers_of_a_tf_keras_savedmodel(capsys, tmp_path):
    """A BatchNorm in a nested Sequential and one inside a custom layer (whose config does
    not hold its sublayers): keras_metadata.pb has an entry for each tracked layer."""
    from codegen.frontends.tensorflow.compat import import_tf

    import_tf()
    import tf_keras

    layers = tf_keras.layers

    class ConvNorm(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(4, 1, name="conv")
            self.norm = layers.BatchNormalization(momentum=0.7, name="norm")

        def call(self, x, training=None):
            return self.norm(self.conv(x), training=training)

    tf_keras.utils.set_random_seed(1)
    inner = tf_keras.Sequential([layers.Conv2D(4, 3, padding="same", name="conv"),
                                 layers.BatchNormalization(momentum=0.8, name="bn")], name="inner")
    inputs = tf_keras.Input((8, 8, 3))
    x = ConvNorm(name="custom")(inner(inputs))
    outputs = layers.BatchNormalization(momentum=0.95, name="top_bn")(x)
    tf_keras.Model(inputs, outputs).save(tmp_path / "saved", save_format="tf")
    code, _, err = run_cli(capsys, "to-ir", tmp_path / "saved", "-o", tmp_path / "ir")
    assert code == 0 and "momentum" not in err, err
    nodes = json.loads((tmp_path / "ir" / "graph.json").read_text())["nodes"]
    assert {node["name"].split("/")[1]: node["attrs"]["momentum"] for node in nodes
            if node["op"] == "batch_norm"} == {"inner": 0.2, "custom": 0.3, "top_bn": 0.05}
