"""A small Keras 3 transformer encoder (token + position embeddings, 2 x [self-attention
with a padding mask, residual, LayerNorm, Dense(gelu), Dense, residual, LayerNorm]),
converted from its `.keras` file and its SavedModel and compared with TensorFlow at two
sequence lengths and two batch sizes: batch and length are unknown in the source, and the
generated model must run at any of them (fast suite).

The encoder layers are named `encoder_block<i>_<layer>` (the Keras applications' convention)
so that each block is one TF scope and the backend can factor them into one class.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from conftest import assert_param_count, trainable_count

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated
from codegen.zoo.keras_apps import save_keras_model

VOCAB, MAX_LENGTH, DIM, HEADS, HIDDEN, LAYERS = 50, 32, 16, 2, 32, 2
LENGTHS, BATCHES = (7, 12), (1, 3)


def _position_embedding_class():
    """A learned position table cut to the input's length (as keras-hub's PositionEmbedding:
    ops.slice to the sequence length, then broadcast_to the input's shape)."""
    import_tf()
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="codegen_tests")
    class PositionEmbedding(keras.layers.Layer):
        def __init__(self, length, **kwargs):
            super().__init__(**kwargs)
            self.length = length

        def build(self, input_shape):
            self.embeddings = self.add_weight(shape=(self.length, input_shape[-1]),
                                              name="embeddings")

        def call(self, x):
            shape = ops.shape(x)
            table = ops.slice(self.embeddings, (0, 0), (shape[1], shape[2]))
            return ops.broadcast_to(table, shape)

        def get_config(self):
            return {**super().get_config(), "length": self.length}

    return PositionEmbedding


def encoder_model(masked: bool = True, seed: int = 1):
    import keras
    from keras import layers

    position_embedding = _position_embedding_class()
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="ids")
    inputs, attention_mask = [ids], None
    if masked:
        mask = keras.Input((None,), dtype="int32", name="mask")
        inputs.append(mask)
        attention_mask = mask[:, None, :]  # [N, 1, S]: every query sees the same keys
    x = layers.Embedding(VOCAB, DIM, name="embed_tokens")(ids)
    x = layers.Add(name="embed_sum")([x, position_embedding(MAX_LENGTH, name="embed_positions")(x)])
    for i in range(1, LAYERS + 1):
        name = f"encoder_block{i}_"
        a = layers.MultiHeadAttention(HEADS, DIM // HEADS, name=name + "attn")(
            x, x, attention_mask=attention_mask)
        x = layers.LayerNormalization(epsilon=1e-5, name=name + "norm1")(
            layers.Add(name=name + "residual1")([x, a]))
        h = layers.Dense(HIDDEN, activation="gelu", name=name + "ff1")(x)
        h = layers.Dense(DIM, name=name + "ff2")(h)
        x = layers.LayerNormalization(epsilon=1e-5, name=name + "norm2")(
            layers.Add(name=name + "residual2")([x, h]))
    model = keras.Model(inputs, layers.Dense(3, name="head")(x))
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # gamma, beta and biases off 0 / 1: a wrong mapping shows
        vector = "kernel" not in weight.path and "embeddings" not in weight.path
        if len(weight.shape) <= 2 and vector:  # gammas, betas, biases ([heads, size] too)
            weight.assign(rng.normal(0.5, 0.3, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def encoder_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder")
    model = encoder_model()
    return model, save_keras_model(model, folder, "encoder")


def _feeds(rng, batch: int, length: int, masked: bool = True) -> list[np.ndarray]:
    ids = rng.integers(0, VOCAB, (batch, length)).astype("int32")
    if not masked:
        return [ids]
    mask = np.ones((batch, length), "int32")  # padding at the end, a different amount per row
    for row in range(batch):
        mask[row, length - 1 - 2 * row:] = 0
    return [ids, mask]


def _convert(path, out):
    to_ir(path, None, None, out / "ir", quiet=True)
    build(out / "ir", out / "model", quiet=True)
    return import_generated(out / "model").load_model(), (out / "model" / "model.py").read_text()


def _errors(keras_model, torch_model, masked: bool = True) -> list[float]:
    rng = np.random.default_rng(5)
    errors = []
    for batch in BATCHES:
        for length in LENGTHS:
            feeds = _feeds(rng, batch, length, masked)
            expected = np.asarray(keras_model(feeds if masked else feeds[:1], training=False))
            with torch.no_grad():
                ours = torch_model(*map(torch.from_numpy, feeds)).numpy()
            assert ours.shape == expected.shape == (batch, length, 3)
            errors.append(float(np.abs(ours - expected).max() / np.abs(expected).max()))
    return errors


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_encoder_matches_tensorflow_at_any_length(encoder_files, fmt, tmp_path) -> None:
    keras_model, paths = encoder_files
    torch_model, source = _convert(paths[fmt], tmp_path)
    errors = _errors(keras_model, torch_model)
    assert max(errors) <= 1e-4, errors

    # one parameter per Keras variable (EinsumDense kernels reshaped, not copied)
    assert len(torch_model.state_dict()) == len(keras_model.weights)
    assert_param_count(tmp_path / "model", trainable_count(keras_model))
    # reads like a hand-written transformer
    assert "F.scaled_dot_product_attention(" in source and "attn_mask=" in source
    assert source.count("nn.Linear(16, 16)") == 4  # query, key, value, output: one class
    assert "nn.LayerNorm(16, eps=1e-05)" in source and "F.gelu(" in source
    assert "nn.Embedding(50, 16)" in source and "PositionEmbedding(32, 16)" in source
    assert ".unflatten(2, (2, 8))" in source and ".flatten(2)" in source
    one_class = r"class (\w+)\(nn.Module\):\n    \"\"\"TF scope [\w/]*block\* \(2 instances\)"
    assert re.findall(one_class, source) == ["Block"], source
    for noise in ("torch.einsum", "torch.where", "F.softmax", ".reshape(", "full_like"):
        assert noise not in source, noise


def test_encoder_without_mask(tmp_path) -> None:
    """No attention mask: SDPA without attn_mask; the scale is still Keras's 1/sqrt(8)."""
    import_tf()
    keras_model = encoder_model(masked=False, seed=2)
    paths = save_keras_model(keras_model, tmp_path, "plain", formats=("keras",))
    torch_model, source = _convert(paths["keras"], tmp_path)
    assert max(_errors(keras_model, torch_model, masked=False)) <= 1e-4
    assert_param_count(tmp_path / "model", trainable_count(keras_model))
    assert "attn_mask" not in source and "scale=0.35355338" in source


def test_attention_pattern_from_a_tf_graph(tmp_path) -> None:
    """The attention rewrite on its own, from a TF1 graph: scale on the query before the
    scores einsum (the other place Keras versions put it), no mask."""
    from conftest import codegen, load_generated, relative_error

    tf = import_tf()
    rng = np.random.default_rng(7)
    graph = tf.Graph()
    with graph.as_default():
        q, k, v = (tf.reshape(tf.compat.v1.placeholder(tf.float32, [None, 5, 8], name=n),
                              [-1, 5, 2, 4]) for n in ("q", "k", "v"))
        scores = tf.einsum("aecd,abcd->acbe", k, q * 0.5)  # Keras 2's operand order
        probs = tf.nn.softmax(scores)
        tf.identity(tf.einsum("acbe,aecd->abcd", probs, v), name="output")
    (tmp_path / "a.pb").write_bytes(graph.as_graph_def().SerializeToString())
    result = codegen("to-ir", tmp_path / "a.pb", "--dst-node", "output", "-o", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert "scale=0.5" in source and "torch.einsum" not in source, source
    feeds = {n: rng.normal(0, 1, (2, 5, 8)).astype("float32") for n in ("q", "k", "v")}
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run("output:0", {f"{n}:0": x for n, x in feeds.items()})
    model = load_generated(tmp_path / "model").load_model()
    with torch.no_grad():
        ours = model(*(torch.from_numpy(feeds[n]) for n in ("q", "k", "v"))).numpy()
    assert relative_error(ours, expected) < 1e-5


def test_keras_hub_bert_backbone(tmp_path) -> None:
    """keras-hub's BertBackbone (tiny, built from its config class, never a preset), from
    its SavedModel: heads-first attention with matmuls, tanh GELU, token type embeddings,
    the pooled first token. Both outputs match TF at two lengths and two batch sizes."""
    tf = import_tf()
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    keras.utils.set_random_seed(3)
    bert = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=2, num_heads=2,
                                         hidden_dim=32, intermediate_dim=64, max_sequence_length=32)
    rng = np.random.default_rng(3)
    for weight in bert.weights:  # gamma, beta and biases off 0 / 1; kernels large enough
        mean, spread = (0.5, 0.3) if len(weight.shape) == 1 else (0.0, 0.3)  # for sharp attention
        weight.assign(rng.normal(mean, spread, weight.shape).astype("float32"))
    paths = save_keras_model(bert, tmp_path, "bert", formats=("savedmodel",))
    torch_model, source = _convert(paths["savedmodel"], tmp_path)
    loaded = tf.saved_model.load(str(paths["savedmodel"]))
    names = [tensor.name for tensor in bert.inputs]  # forward takes them in this order
    assert list(inspect.signature(torch_model.forward).parameters) == names
    for batch in BATCHES:
        for length in LENGTHS:
            ids, mask = _feeds(rng, batch, length)
            feeds = {"token_ids": ids, "padding_mask": mask,
                     "segment_ids": rng.integers(0, 2, (batch, length)).astype("int32")}
            expected = loaded.serve(feeds)
            with torch.no_grad():
                ours = torch_model(*(torch.from_numpy(feeds[name]) for name in names))
            for name, value in zip(("sequence_output", "pooled_output"),
                                   sorted(ours, key=lambda t: -t.dim())):
                reference = np.asarray(expected[name])
                error = np.abs(value.numpy() - reference).max() / np.abs(reference).max()
                assert error <= 1e-4, (name, batch, length, error)
    assert source.count("F.scaled_dot_product_attention(") == 1  # one layer class, 2 instances
    # in an nn.ModuleList, called in a loop with the mask (made once, tests/test_depth_loop.py)
    assert "self.transformer_layers = nn.ModuleList([TransformerLayer() for _ in range(2)])" in source
    assert "for layer in self.transformer_layers:" in source
    assert "hidden_states = layer(hidden_states, attention_mask)" in source
    # sublayers named as in Keras (the second trace's `query_1` scopes read `query`)
    assert "self.self_attention_layer = SelfAttentionLayer()" in source
    assert "self.query = nn.Linear(32, 32)" in source and "_1 = " not in source
    assert 'F.gelu(' in source and 'approximate="tanh"' in source and "[:, 0])" in source
    assert "nn.LayerNorm(32, eps=1e-12)" in source and "torch.matmul" not in source
    assert len(torch_model.state_dict()) == len(bert.weights)
    assert_param_count(tmp_path / "model", trainable_count(bert))


def test_shapes_read_at_conversion(tmp_path) -> None:
    """tf.tensordot on [N, T, C] with T unknown is one linear (no shape arithmetic in the
    code); a reshape to [tf.shape(x)[0], -1] keeps its one -1; x[:, 0] and y[:, 1:3, 0]
    (shrink_axis_mask); all run at any length."""
    from conftest import codegen, load_generated, relative_error

    tf = import_tf()
    rng = np.random.default_rng(9)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, 4], name="x")
        y = tf.compat.v1.placeholder(tf.float32, [None, 3, 4], name="y")
        dense = tf.tensordot(x, tf.constant(rng.normal(0, 1, (4, 5)), tf.float32), axes=1)
        flat = tf.reshape(y, [tf.shape(y)[0], -1])
        picked = tf.reduce_sum(y[:, 1:3, 0], axis=1, keepdims=True)  # slice, then drop axis 2
        tf.identity(tf.reduce_sum(dense, axis=1) + flat[:, :5] + picked + x[:, 0, :1], name="output")
    (tmp_path / "s.pb").write_bytes(graph.as_graph_def().SerializeToString())
    result = codegen("to-ir", tmp_path / "s.pb", "--dst-node", "output", "-o", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert "nn.Linear(4, 5, bias=False)" in source and ".reshape(" not in source, source
    assert "x[:, 0, :1]" in source and "y[:, 1:3, 0]" in source, source  # plain indexing
    model = load_generated(tmp_path / "model").load_model()
    for length in LENGTHS:
        feeds = {"x": rng.normal(0, 1, (2, length, 4)).astype("float32"),
                 "y": rng.normal(0, 1, (2, 3, 4)).astype("float32")}
        with tf.compat.v1.Session(graph=graph) as session:
            expected = session.run("output:0", {f"{k}:0": v for k, v in feeds.items()})
        with torch.no_grad():
            ours = model(*(torch.from_numpy(feeds[k]) for k in ("x", "y"))).numpy()
        assert relative_error(ours, expected) < 1e-5
