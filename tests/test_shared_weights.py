"""One source variable, one parameter: shared layers stay shared, inputs keep their order.

A TF1 graph that applies one layer twice through `variable_scope(reuse=True)` and a Keras
model that calls one layer on two inputs (and one layer twice in a row) must convert to
one module called several times: the numbers match TensorFlow, the parameter count is the
source's, and `weights/index.json` names each source variable. Before this was fixed the
reused dense kernel was transposed once per reader (so twice: wrong numbers) and every
call got its own copy of the weights (untied when fine-tuned).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import codegen, load_generated, relative_error, tf1_dense

from codegen.frontends.tensorflow.compat import import_tf
from codegen.verify import TFRunner


def tf1_reuse_checkpoint(prefix) -> dict[str, np.ndarray]:
    """fc(relu(fc(conv(relu(conv(x)))))): one conv and one dense layer, each applied twice
    through variable_scope(reuse=True), saved as a checkpoint; returns the variables."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 6, 6, 4], name="input")

        def conv(h, reuse):
            with v1.variable_scope("conv", reuse=reuse):
                w = v1.get_variable("weights", [3, 3, 4, 4],
                                    initializer=v1.random_normal_initializer(0, 0.3, seed=1))
                b = v1.get_variable("biases", [4], initializer=v1.random_normal_initializer(seed=2))
            return tf.nn.bias_add(tf.nn.conv2d(h, w, 1, "SAME"), b)

        def fc(h, reuse):
            with v1.variable_scope("fc", reuse=reuse):
                w = v1.get_variable("weights", [8, 8],
                                    initializer=v1.random_normal_initializer(0, 0.4, seed=3))
                b = v1.get_variable("biases", [8], initializer=v1.random_normal_initializer(seed=4))
            return tf.matmul(h, w) + b

        h = conv(tf.nn.relu(conv(x, reuse=False)), reuse=True)
        h = tf.reshape(tf.reduce_mean(h, [1, 2]), [-1, 4])
        h = tf.concat([h, h * 0.5], axis=1)
        tf.identity(fc(tf.nn.relu(fc(h, reuse=False)), reuse=True), name="output")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(prefix))
            return {v.op.name: session.run(v) for v in v1.trainable_variables()}


def test_tf1_reuse_is_one_module_with_tf_numbers(tmp_path):
    variables = tf1_reuse_checkpoint(tmp_path / "reuse.ckpt")
    meta = tmp_path / "reuse.ckpt.meta"
    result = codegen("to-ir", meta, "--dst-node", "output", "-o", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    graph = json.loads((tmp_path / "ir" / "graph.json").read_text())
    assert len(graph["weights"]) == 4  # one IR weight (one file) per variable

    source = (tmp_path / "model" / "model.py").read_text()
    assert source.count("nn.Linear(") == 1 and source.count("nn.Conv2d(") == 1, source
    assert source.count("self.fc(") == 2 and source.count("self.conv(") == 2, source
    model = load_generated(tmp_path / "model").load_model()
    assert sum(p.numel() for p in model.parameters()) == sum(v.size for v in variables.values())

    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    assert {key: entry["source"] for key, entry in index.items()} == {
        "conv.weight": "conv/weights", "conv.bias": "conv/biases",
        "fc.weight": "fc/weights", "fc.bias": "fc/biases"}
    assert index["fc.weight"]["transforms"] == [["transpose", [1, 0]]]
    assert index["conv.weight"]["transforms"] == [["transpose", [3, 2, 0, 1]]]

    result = codegen("verify", meta, "--dst-node", "output", tmp_path / "model")
    assert result.returncode == 0, result.stdout + result.stderr  # was 0.9 before the fix


def keras_siamese():
    """One Conv2D on two inputs named so that their alphabetical order ('context' <
    'query') is not the model's, and one Dense applied twice in a row."""
    import keras

    query = keras.Input((7, 7, 3), name="query")
    context = keras.Input((7, 7, 3), name="context")
    conv = keras.layers.Conv2D(4, 3, name="shared_conv")
    dense = keras.layers.Dense(6, name="shared_dense")
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{i}")(conv(x))
              for i, x in enumerate((query, context))]
    x = keras.layers.Dense(6, name="proj")(keras.layers.Concatenate(name="cat")(pooled))
    outputs = dense(keras.layers.Activation("tanh")(dense(x)))
    model = keras.Model([query, context], outputs)
    rng = np.random.default_rng(5)  # biases off zero, so a wrong bias mapping shows
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def siamese(tmp_path_factory):
    from codegen.zoo import keras_apps as keras_zoo

    folder = tmp_path_factory.mktemp("siamese")
    model = keras_siamese()
    paths = keras_zoo.save_keras_model(model, folder, "siamese")
    rng = np.random.default_rng(6)
    images = [rng.uniform(-1, 1, (3, 7, 7, 3)).astype("float32") for _ in range(2)]
    expected = model(images).numpy()
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return paths, images, expected, count


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_keras_shared_layers_and_input_order(siamese, tmp_path, fmt):
    paths, (query, context), expected, keras_count = siamese
    assert codegen("to-ir", paths[fmt], "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert "def forward(self, query: torch.Tensor, context: torch.Tensor)" in source, source
    assert source.count("nn.Conv2d(") == 1 and source.count("nn.Linear(") == 2, source

    model = load_generated(tmp_path / "model").load_model()
    assert sum(p.numel() for p in model.parameters()) == keras_count  # 208, not 282
    nchw = [torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in (query, context)]
    with torch.no_grad():
        positional = model(*nchw).numpy()
        by_name = model(context=nchw[1], query=nchw[0]).numpy()
    assert relative_error(positional, expected) < 1e-5
    assert np.array_equal(positional, by_name)

    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    sources = sorted(entry["source"] for entry in index.values())
    assert sources == sorted(["shared_conv/kernel", "shared_conv/bias", "proj/kernel",
                              "proj/bias", "shared_dense/kernel", "shared_dense/bias"])
    result = codegen("verify", paths[fmt], tmp_path / "model")
    assert result.returncode == 0, result.stdout + result.stderr


def test_input_option_sets_the_order(siamese, tmp_path):
    paths, *_ = siamese
    result = codegen("to-ir", paths["keras"], "--input", "context", "--input", "query",
                     "-o", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert "def forward(self, context: torch.Tensor, query: torch.Tensor)" in source
    result = codegen("to-ir", paths["keras"], "--input", "query", "-o", tmp_path / "ir2")
    assert result.returncode == 2 and "'context'" in result.stderr, result.stderr
    assert not (tmp_path / "ir2").exists()


def tied_checkpoint(prefix) -> None:
    """Token ids -> embedding table -> dense -> logits = h @ table.T (the output projection
    tied to the embedding, as TF1 language models write it)."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        ids = v1.placeholder(tf.int32, [None, 5], name="ids")
        with v1.variable_scope("embeddings"):
            table = v1.get_variable("word_embeddings", [20, 8],
                                    initializer=v1.random_normal_initializer(seed=1))
        h = tf.reshape(tf.nn.embedding_lookup(table, ids), [-1, 8])
        with v1.variable_scope("dense"):
            w = v1.get_variable("kernel", [8, 8], initializer=v1.random_normal_initializer(0, 0.3, seed=2))
            b = v1.get_variable("bias", [8], initializer=v1.random_normal_initializer(seed=3))
        logits = tf.matmul(tf.tanh(tf.matmul(h, w) + b), table, transpose_b=True)
        tf.identity(tf.reshape(logits, [-1, 5, 20]), name="output")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(prefix))


def test_tied_output_projection_is_one_parameter(tmp_path):
    tied_checkpoint(tmp_path / "tied.ckpt")
    meta = tmp_path / "tied.ckpt.meta"
    assert codegen("to-ir", meta, "--dst-node", "output", "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert "nn.Embedding(20, 8)" in source and "self.embedding.weight" in source, source
    assert source.count("nn.Linear(") == 1 and "F.linear(" in source, source
    model = load_generated(tmp_path / "model").load_model()
    assert sum(p.numel() for p in model.parameters()) == 20 * 8 + 8 * 8 + 8
    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    assert index["embedding.weight"]["source"] == "embeddings/word_embeddings"

    ids = np.random.default_rng(7).integers(0, 20, (3, 5)).astype(np.int32)
    expected = TFRunner(meta, tmp_path / "tied.ckpt").run(["output"], {"ids": ids})[0]
    with torch.no_grad():
        ours = model(torch.from_numpy(ids)).numpy()
    assert relative_error(ours, expected) < 1e-6

    # verify draws token ids in range of the table (not all zeros), or takes the user's own
    io = json.loads((tmp_path / "model" / ".codegen" / "io.json").read_text())
    assert io["inputs"][0]["ids_below"] == 20
    from codegen.verify import random_inputs

    drawn = random_inputs(io, 4, seed=0)["ids"]
    assert drawn.min() >= 0 and drawn.max() < 20 and len(np.unique(drawn)) > 5
    result = codegen("verify", meta, "--dst-node", "output", tmp_path / "model")
    assert result.returncode == 0, result.stdout + result.stderr
    np.savez(tmp_path / "ids.npz", ids=ids)
    result = codegen("verify", meta, "--dst-node", "output", tmp_path / "model",
                     "--inputs", tmp_path / "ids.npz")
    assert result.returncode == 0 and "batch 3: output [3, 5, 20]" in result.stdout, result.stdout


def test_block_shared_across_depth(tmp_path):
    """ALBERT-style: one block (two dense layers and a residual sum) applied three times
    through variable_scope(reuse=True): one module called in a loop (tests/test_depth_loop.py
    has more)."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        h = v1.placeholder(tf.float32, [None, 6], name="input")
        for depth in range(3):
            with v1.variable_scope("layer", reuse=depth > 0):
                h = h + tf1_dense(tf, tf.nn.relu(tf1_dense(tf, h, 12, "up", 1)), 6, "down", 3)
        tf.identity(h, name="output")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(tmp_path / "albert.ckpt"))
            count = sum(int(np.prod(v.shape)) for v in v1.trainable_variables())
    meta = tmp_path / "albert.ckpt.meta"
    assert codegen("to-ir", meta, "--dst-node", "output", "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert source.count("nn.Linear(") == 2, source
    model = load_generated(tmp_path / "model").load_model()
    assert sum(p.numel() for p in model.parameters()) == count == 6 * 12 + 12 + 12 * 6 + 6
    assert source.count("self.up(") == 1 and source.count("self.down(") == 1, source
    assert "for _ in range(3):\n            x = self.layer(x)\n" in source, source
    result = codegen("verify", meta, "--dst-node", "output", tmp_path / "model")
    assert result.returncode == 0, result.stdout + result.stderr
