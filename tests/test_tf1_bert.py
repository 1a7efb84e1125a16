"""A tiny BERT written in TF1 graph mode with the ops the original `modeling.py` emits (issue
15): word embeddings by `tf.gather`, token types by `tf.one_hot` @ table, positions by
`tf.slice(table, [0, 0], [T, -1])`, LayerNorm as `tf.nn.moments` + `tf.nn.batch_normalization`
arithmetic (what `tf.contrib.layers.layer_norm` lowers to), the attention mask as
`reshape(mask, [B, 1, T]) * ones([B, T, 1])` and `(1 - mask) * -10000` added to the scores,
`matmul(q, k, transpose_b=True) * 1/sqrt(d)`, erf GELU, and a tanh pooler, saved with a
`Saver` (.meta + checkpoint). Batch and length are unknown in the graph ([None, None]
placeholders); the converted model must match TF at two lengths and two batch sizes.

The graph builder is written here (nothing downloaded). One difference from modeling.py:
activations stay [B, T, C] (dense layers on rank 3, as `tf.compat.v1.layers.dense` writes
them: tensordot + bias) instead of being flattened to [B * T, C] between layers;
`tf.compat.v1.layers.dense` itself is not available with Keras 3, so `dense` below creates
the same `kernel` / `bias` variables and ops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import codegen, load_generated

from codegen.frontends.tensorflow.compat import import_tf

VOCAB, TYPES, MAX_LENGTH, HIDDEN, HEADS, INTERMEDIATE, LAYERS = 40, 2, 24, 16, 2, 32, 2
LENGTHS, BATCHES = (5, 11), (1, 3)
INPUTS = ("input_ids", "input_mask", "token_type_ids")


def _dense(tf, x, units, name, activation=None):
    """tf.compat.v1.layers.dense: variables `name/kernel`, `name/bias`; a matmul on
    [B, C], a tensordot over the last axis on [B, T, C]; then the bias."""
    v1 = tf.compat.v1
    with v1.variable_scope(name):
        kernel = v1.get_variable("kernel", [x.shape[-1], units])
        bias = v1.get_variable("bias", [units])
    product = tf.matmul(x, kernel) if x.shape.rank == 2 else tf.tensordot(x, kernel, [[2], [0]])
    y = tf.nn.bias_add(product, bias)
    return activation(y) if activation else y


def _layer_norm(tf, x, name="LayerNorm"):
    """tf.contrib.layers.layer_norm over the last axis, as it lowers: moments, then
    batch_normalization's x * (rsqrt(var + eps) * gamma) + (beta - mean * that)."""
    v1 = tf.compat.v1
    with v1.variable_scope(name):
        beta = v1.get_variable("beta", [x.shape[-1]])
        gamma = v1.get_variable("gamma", [x.shape[-1]])
        mean, variance = tf.nn.moments(x, [2], keepdims=True)
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, 1e-12)


def _gelu(tf, x):
    return x * 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def _attention(tf, x, adder, batch, length):
    size = HIDDEN // HEADS

    def heads(t):  # [B, T, H * D] -> [B, H, T, D]
        return tf.transpose(tf.reshape(t, [batch, length, HEADS, size]), [0, 2, 1, 3])

    query = heads(_dense(tf, x, HIDDEN, "query"))
    key = heads(_dense(tf, x, HIDDEN, "key"))
    value = heads(_dense(tf, x, HIDDEN, "value"))
    scores = tf.matmul(query, key, transpose_b=True)
    scores = tf.multiply(scores, 1.0 / math.sqrt(float(size)))
    probs = tf.nn.softmax(scores + adder)
    context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
    return tf.reshape(context, [batch, length, HIDDEN])


def build_bert(tf):
    """The graph: placeholders, embeddings, LAYERS encoder layers, pooler. Returns the
    output tensors (sequence_output, pooled_output)."""
    v1 = tf.compat.v1
    input_ids, input_mask, token_type_ids = (
        v1.placeholder(tf.int32, [None, None], name=name) for name in INPUTS)
    shape = tf.shape(input_ids)
    batch, length = shape[0], shape[1]
    with v1.variable_scope("bert"):
        with v1.variable_scope("embeddings"):
            words = v1.get_variable("word_embeddings", [VOCAB, HIDDEN])
            x = tf.gather(words, input_ids)
            types = v1.get_variable("token_type_embeddings", [TYPES, HIDDEN])
            one_hot = tf.one_hot(tf.reshape(token_type_ids, [-1]), depth=TYPES)
            x += tf.reshape(tf.matmul(one_hot, types), [batch, length, HIDDEN])
            positions = v1.get_variable("position_embeddings", [MAX_LENGTH, HIDDEN])
            x += tf.reshape(tf.slice(positions, [0, 0], [length, -1]), [1, length, HIDDEN])
            x = _layer_norm(tf, x)
        with v1.variable_scope("encoder"):
            mask = tf.cast(tf.reshape(input_mask, [batch, 1, length]), tf.float32)
            mask = tf.ones([batch, length, 1], tf.float32) * mask  # [B, T, T]
            adder = (1.0 - tf.expand_dims(mask, axis=[1])) * -10000.0
            for index in range(LAYERS):
                with v1.variable_scope(f"layer_{index}"):
                    with v1.variable_scope("attention"):
                        with v1.variable_scope("self"):
                            attended = _attention(tf, x, adder, batch, length)
                        with v1.variable_scope("output"):
                            attended = _dense(tf, attended, HIDDEN, "dense")
                            x = _layer_norm(tf, attended + x)
                    with v1.variable_scope("intermediate"):
                        hidden = _dense(tf, x, INTERMEDIATE, "dense", lambda t: _gelu(tf, t))
                    with v1.variable_scope("output"):
                        x = _layer_norm(tf, _dense(tf, hidden, HIDDEN, "dense") + x)
        sequence_output = tf.identity(x, name="sequence_output")
        with v1.variable_scope("pooler"):
            first = tf.squeeze(sequence_output[:, 0:1, :], axis=1)
            pooled = tf.identity(_dense(tf, first, HIDDEN, "dense", tf.tanh), name="pooled_output")
    return sequence_output, pooled


def bert_checkpoint(prefix, seed: int = 1):
    """Build, give every variable deterministic random values (1-D ones around 0.5, off
    0 / 1; matrices large enough for sharp attention) and save; returns the graph."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        build_bert(tf)
        rng = np.random.default_rng(seed)
        with v1.Session() as session:
            for variable in v1.global_variables():
                shape = variable.shape.as_list()
                mean, spread = (0.5, 0.3) if len(shape) == 1 else (0.0, 0.5)
                variable.load(rng.normal(mean, spread, shape).astype("float32"), session)
            v1.train.Saver().save(session, str(prefix))
    return graph


def feeds(rng, batch: int, length: int) -> dict[str, np.ndarray]:
    mask = np.ones((batch, length), "int32")  # padding at the end, a different amount per row
    for row in range(batch):
        mask[row, length - 1 - 2 * row:] = 0
    return {"input_ids": rng.integers(0, VOCAB, (batch, length)).astype("int32"),
            "input_mask": mask,
            "token_type_ids": rng.integers(0, TYPES, (batch, length)).astype("int32")}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """The checkpoint, converted with the command line: (graph, prefix, model folder, source)."""
    folder = tmp_path_factory.mktemp("tf1_bert")
    prefix = folder / "bert.ckpt"
    graph = bert_checkpoint(prefix)
    result = codegen("to-ir", f"{prefix}.meta", "-w", prefix, "--dst-node", "bert/sequence_output",
                     "--dst-node", "bert/pooler/pooled_output", "-o", folder / "ir")
    assert result.returncode == 0, result.stderr
    result = codegen("build", folder / "ir", "-o", folder / "model")
    assert result.returncode == 0, result.stderr
    return graph, prefix, folder / "model", (folder / "model" / "model.py").read_text()


def tf_outputs(graph, prefix, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    tf = import_tf()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.train.Saver().restore(session, str(prefix))
        return session.run(["bert/sequence_output:0", "bert/pooler/pooled_output:0"],
                           {f"{name}:0": value for name, value in feed.items()})


def test_tf1_bert_matches_tensorflow_at_any_length(bert) -> None:
    graph, prefix, folder, _ = bert
    model = load_generated(folder).load_model()
    rng = np.random.default_rng(5)
    errors = {}
    for batch in BATCHES:
        for length in LENGTHS:
            feed = feeds(rng, batch, length)
            expected = tf_outputs(graph, prefix, feed)
            with torch.no_grad():
                ours = model(*(torch.from_numpy(feed[name]) for name in INPUTS))
            for name, value, reference in zip(("sequence", "pooled"), ours, expected):
                assert value.shape == reference.shape
                errors[name, batch, length] = float(
                    np.abs(value.numpy() - reference).max() / np.abs(reference).max())
    assert max(errors.values()) <= 1e-4, errors
    with graph.as_default():  # one parameter per TF variable
        count = len(import_tf().compat.v1.global_variables())
    assert len(model.state_dict()) == count == 5 + LAYERS * 16 + 2


def test_tf1_bert_reads_like_a_hand_written_bert(bert) -> None:
    *_, source = bert
    assert "nn.Embedding(40, 16)" in source and "nn.Embedding(2, 16)" in source  # one-hot @ table
    assert "PositionEmbedding(24, 16)" in source
    assert source.count("nn.LayerNorm(16, eps=1e-12)") == 2  # embeddings; Output class (x2 x2)
    assert source.count("F.scaled_dot_product_attention(") == 1  # one layer class, 2 instances
    assert "attn_mask=" in source and "scale=0.35355338" in source
    # the additive mask, made once in the encoder (the ones([B, T, 1]) broadcast left to SDPA)
    assert "attention_mask = 1.0 - input_mask.unsqueeze(1).float().unsqueeze(1)" in source, source
    # block parameters named by role, not x0, x1
    assert "self, hidden_states: torch.Tensor, attention_mask: torch.Tensor" in source, source
    assert source.count("* -10000.0") == 1
    assert "F.gelu(" in source and "approximate" not in source  # erf GELU
    assert "torch.tanh(self.pooler(" in source
    assert "class Layer(nn.Module):\n    \"\"\"TF scope bert/encoder/layer_* (2 instances)" in source
    for noise in ("torch.matmul", "F.softmax", "F.one_hot", "full_like", "torch.erf",
                  "torch.rsqrt", ".permute(", "torch.square"):
        assert noise not in source, noise


def test_tf1_bert_verify(bert) -> None:
    """`codegen verify` draws its own inputs (batch 4 x 16 steps, batch 1 x 7)."""
    _, prefix, folder, _ = bert
    result = codegen("verify", f"{prefix}.meta", "-w", prefix, "--dst-node", "bert/sequence_output",
                     "--dst-node", "bert/pooler/pooled_output", folder)
    assert result.returncode == 0, result.stdout + result.stderr


def _convert_graph(tmp_path, graph, outputs: list[str]):
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    args = [arg for name in outputs for arg in ("--dst-node", name)]
    result = codegen("to-ir", tmp_path / "g.pb", *args, "-o", tmp_path / "ir")
    if result.returncode != 0:
        return result, None, None
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    return result, load_generated(tmp_path / "model").load_model(), source


def _run(graph, model, feed: dict[str, np.ndarray], outputs: list[str]):
    tf = import_tf()
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run([f"{name}:0" for name in outputs],
                               {f"{name}:0": value for name, value in feed.items()})
    with torch.no_grad():
        ours = model(*map(torch.from_numpy, feed.values()))
    ours = ours if isinstance(ours, tuple) else (ours,)
    return [(o.numpy(), e) for o, e in zip(ours, expected)]


def test_shapes_read_from_another_input(tmp_path) -> None:
    """Sizes from tf.shape(ids) used on another tensor of the same sizes: a reshape to
    [B, T, H, D] (unflatten), [B, 1, T] (unsqueeze), [B, T, H * D] (flatten),
    tf.ones([B, T, 1]) (full_like), tf.one_hot alone (F.one_hot) and int -> float casts."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    rng = np.random.default_rng(2)
    with graph.as_default():
        ids = v1.placeholder(tf.int32, [None, None], name="ids")
        x = v1.placeholder(tf.float32, [None, None, 6], name="x")
        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        heads = tf.reshape(x, [batch, length, 2, 3]) * tf.constant([1.0, -2.0, 3.0])
        merged = tf.reshape(heads, [batch, length, 6])
        mask = tf.cast(tf.reshape(ids, [batch, 1, length]), tf.float32)  # [B, 1, T]
        ones = tf.ones([batch, length, 1], tf.float32)  # [B, T, 1]
        hot = tf.reduce_sum(tf.one_hot(ids, 4) * tf.constant([1.0, 2.0, 4.0, 8.0]), axis=2)
        tf.identity(merged + tf.reduce_sum(ones * mask, axis=2, keepdims=True) + hot[:, :, None],
                    name="output")
    result, model, source = _convert_graph(tmp_path, graph, ["output"])
    assert result.returncode == 0, result.stderr
    assert ".unflatten(2, (2, 3))" in source and ".flatten(2)" in source, source
    assert "F.one_hot(" in source and "torch.full_like(" in source and ".float()" in source, source
    assert ".reshape(" not in source, source
    for batch, length in ((1, 4), (3, 9)):
        feed = {"ids": rng.integers(0, 4, (batch, length)).astype("int32"),
                "x": rng.normal(0, 1, (batch, length, 6)).astype("float32")}
        for ours, expected in _run(graph, model, feed, ["output"]):
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_sizes_of_another_tensor_in_another_order(tmp_path) -> None:
    """reshape(x [B, T, C], [T, B, C]) with B, T from tf.shape(ids) is not x's own shape:
    the sizes are read from ids at run time (x.reshape(ids.shape[1], ids.shape[0], 2, 3)),
    never a reshape that keeps x's sizes (it was refused before sizes were values)."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        ids = v1.placeholder(tf.int32, [None, None], name="ids")
        x = v1.placeholder(tf.float32, [None, None, 6], name="x")
        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        tf.identity(tf.reshape(x, [length, batch, 2, 3]), name="output")
        tf.identity(tf.cast(ids, tf.float32), name="ids_out")  # ids is an input, fed in the check
    result, model, source = _convert_graph(tmp_path, graph, ["output", "ids_out"])
    assert result.returncode == 0, result.stderr
    assert "ids.shape[1], ids.shape[0], 2, 3" in source, source
    rng = np.random.default_rng(0)
    for batch, length in ((2, 3), (3, 5)):
        feed = {"ids": rng.integers(0, 9, (batch, length)).astype("int32"),
                "x": rng.normal(0, 1, (batch, length, 6)).astype("float32")}
        for ours, expected in _run(graph, model, feed, ["output", "ids_out"]):
            np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("form", ["x * 0.5 * (1 + erf(x / sqrt2))", "x * (0.5 * (1 + erf(x * c)))"])
def test_erf_gelu_groupings(tmp_path, form) -> None:
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        if form.startswith("x * 0.5"):
            y = x * 0.5 * (1.0 + tf.math.erf(x / tf.sqrt(2.0)))
        else:
            y = x * (0.5 * (1.0 + tf.math.erf(x * (1 / math.sqrt(2.0)))))
        tf.identity(y, name="output")
    result, model, source = _convert_graph(tmp_path, graph, ["output"])
    assert result.returncode == 0, result.stderr
    assert "F.gelu(" in source and "torch.erf" not in source, source
    feed = {"x": np.random.default_rng(3).normal(0, 2, (3, 8)).astype("float32")}
    for ours, expected in _run(graph, model, feed, ["output"]):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
