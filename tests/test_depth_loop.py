"""A block reused across depth is one module called in a loop; the mask is made once.

ALBERT applies one transformer layer's weights N times. Converted, that is one module
(one set of parameters, the source's variables) and `for _ in range(N): hidden =
self.layer(hidden, mask)`, not N inlined copies with locals `_2`, `_3` (depth.py,
modules.py). A mask computed from the model's inputs inside every layer is computed once
in the model's forward and passed down (codegen/ir/passes/hoist.py). Numbers match TF.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import codegen, load_generated, relative_error, tf1_dense

from codegen.frontends.tensorflow.compat import import_tf
from codegen.verify import TFRunner

LOOP = re.compile(r"for _ in range\((\d+)\):\n +(\w+) = self\.(\w+)\(([^\n]*)\)\n")


def albert_checkpoint(prefix, *, depth: int = 4, share_down: bool = True) -> int:
    """h = h + down(relu(up(h))) * m, m = cast(mask[:, None]) made inside each layer,
    `depth` layers through variable_scope(reuse=True) (`share_down=False`: each layer has
    its own 'down'); saved as a checkpoint; returns the trainable parameter count."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        h = v1.placeholder(tf.float32, [None, 6], name="hidden")
        mask = v1.placeholder(tf.int32, [None], name="mask")

        for index in range(depth):
            with v1.variable_scope("layer", reuse=v1.AUTO_REUSE):
                m = tf.cast(tf.expand_dims(mask, -1), tf.float32)
                down = "down" if share_down else f"down_{index}"
                up = tf.nn.relu(tf1_dense(tf, h, 12, "up", 1))
                h = h + tf1_dense(tf, up, 6, down, 3 + 2 * index) * m
        tf.identity(h, name="output")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(prefix))
            return sum(int(np.prod(v.shape)) for v in v1.trainable_variables())


def _feeds(batch: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    mask = np.array([1, 0, 1, 1][:batch], np.int32)
    return {"hidden": rng.normal(0, 1, (batch, 6)).astype(np.float32), "mask": mask}


def _build(tmp_path, meta):
    assert codegen("to-ir", meta, "--dst-node", "output", "-o", tmp_path / "ir").returncode == 0
    result = codegen("build", tmp_path / "ir", "-o", tmp_path / "model")
    assert result.returncode == 0, result.stderr
    return (tmp_path / "model" / "model.py").read_text()


def test_tf1_reuse_across_depth_is_a_loop(tmp_path):
    count = albert_checkpoint(tmp_path / "albert.ckpt")
    meta = tmp_path / "albert.ckpt.meta"
    source = _build(tmp_path, meta)
    loop = LOOP.search(source)
    assert loop and loop[1] == "4", source
    assert loop[2] == "hidden" and loop[3] == "layer", source
    assert source.count("nn.Linear(") == 2 and source.count("self.up(") == 1, source
    assert "_2" not in source.partition("class Model")[2], source  # no inlined copies
    assert '"""TF scope layer (one module called 4 times)."""' in source, source
    # the mask is made once, before the loop, and passed to every call
    made = re.findall(r"\n +(\w+) = mask\.reshape\(-1, 1\)\.float\(\)\n", source)
    assert len(made) == 1 and loop[4] == f"hidden, {made[0]}", source

    model = load_generated(tmp_path / "model").load_model()
    assert sum(p.numel() for p in model.parameters()) == count
    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    assert {key: entry["source"] for key, entry in index.items()} == {
        "layer.up.weight": "layer/up/kernel", "layer.up.bias": "layer/up/bias",
        "layer.down.weight": "layer/down/kernel", "layer.down.bias": "layer/down/bias"}

    feeds = _feeds()
    expected = TFRunner(meta, tmp_path / "albert.ckpt").run(["output"], feeds)[0]
    with torch.no_grad():
        ours = model(*(torch.from_numpy(feeds[name]) for name in ("hidden", "mask"))).numpy()
    assert relative_error(ours, expected) < 1e-5

    # the same IR gives the same bytes
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "again").returncode == 0
    assert (tmp_path / "again" / "model.py").read_text() == source


def test_partly_shared_blocks_are_not_a_loop(tmp_path):
    """Layers that share 'up' but each have their own 'down': no loop over one module
    (that would tie the 'down's), and still one parameter per source variable."""
    count = albert_checkpoint(tmp_path / "part.ckpt", depth=3, share_down=False)
    meta = tmp_path / "part.ckpt.meta"
    source = _build(tmp_path, meta)
    assert "for _ in range(" not in source, source
    model = load_generated(tmp_path / "model").load_model()
    assert sum(p.numel() for p in model.parameters()) == count
    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    sources = [entry["source"] for entry in index.values()]
    assert len(sources) == len(set(sources)) == 2 + 2 * 3
    feeds = _feeds()
    expected = TFRunner(meta, tmp_path / "part.ckpt").run(["output"], feeds)[0]
    with torch.no_grad():
        ours = model(*(torch.from_numpy(feeds[name]) for name in ("hidden", "mask"))).numpy()
    assert relative_error(ours, expected) < 1e-5


def keras_reused_block():
    """A Keras functional model that calls one block layer object three times."""
    import keras

    @keras.saving.register_keras_serializable(package="test_depth_loop")
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.up = keras.layers.Dense(12, activation="relu", name="up")
            self.down = keras.layers.Dense(6, name="down")
            self.norm = keras.layers.LayerNormalization(name="norm")

        def call(self, x):
            return self.norm(x + self.down(self.up(x)))

    inputs = keras.Input((5, 6), name="features")
    block = Block(name="block")
    x = keras.layers.Dense(6, name="stem")(inputs)
    for _ in range(3):
        x = block(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    rng = np.random.default_rng(8)
    model.set_weights([rng.normal(0.2, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_keras_layer_called_three_times_is_a_loop(tmp_path):
    import_tf()
    from codegen.zoo.keras_apps import save_keras_model

    model = keras_reused_block()
    paths = save_keras_model(model, tmp_path, "reused", formats=("savedmodel",))
    assert codegen("to-ir", paths["savedmodel"], "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    loop = LOOP.search(source)
    assert loop and loop[1] == "3" and loop[3] == "block", source
    assert source.count("nn.LayerNorm(") == 1 and source.count("nn.Linear(") == 4, source
    torch_model = load_generated(tmp_path / "model").load_model()
    assert len(torch_model.state_dict()) == len(model.weights)
    x = np.random.default_rng(9).normal(0, 1, (2, 5, 6)).astype("float32")
    with torch.no_grad():
        ours = torch_model(torch.from_numpy(x)).numpy()
    assert relative_error(ours, np.asarray(model(x))) < 1e-5


@pytest.fixture(scope="module")
def keras_hub():
    return pytest.importorskip("keras_hub")


def _hub_model(keras_hub, kind: str, groups: int = 1):
    import_tf()
    import keras

    keras.utils.set_random_seed(4)
    sizes = {"vocabulary_size": 50, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64,
             "max_sequence_length": 32}
    if kind == "albert":
        model = keras_hub.models.AlbertBackbone(num_layers=3 if groups == 1 else 4,
                                                embedding_dim=16, num_groups=groups,
                                                num_inner_repetitions=1, **sizes)
    else:
        model = keras_hub.models.BertBackbone(num_layers=2, **sizes)
    rng = np.random.default_rng(4)  # vectors off 0 / 1, so a wrong mapping shows
    for weight in model.weights:
        mean = 0.5 if len(weight.shape) == 1 else 0.0
        weight.assign(rng.normal(mean, 0.3, weight.shape).astype("float32"))
    return model


def _hub_errors(model, torch_model) -> list[float]:
    names = [tensor.name for tensor in model.inputs]
    rng = np.random.default_rng(6)
    errors = []
    for batch, length in ((1, 7), (3, 12)):
        mask = np.ones((batch, length), "int32")
        for row in range(batch):
            mask[row, length - 1 - 2 * row:] = 0
        feeds = {"token_ids": rng.integers(0, 50, (batch, length)).astype("int32"),
                 "segment_ids": rng.integers(0, 2, (batch, length)).astype("int32"),
                 "padding_mask": mask}
        expected = model(feeds, training=False)
        with torch.no_grad():
            pooled, sequence = torch_model(*(torch.from_numpy(feeds[name]) for name in names))
        errors += [relative_error(pooled.numpy(), np.asarray(expected["pooled_output"])),
                   relative_error(sequence.numpy(), np.asarray(expected["sequence_output"]))]
    return errors


def test_keras_hub_albert_is_one_layer_in_a_loop(keras_hub, tmp_path):
    from test_transformers import _convert

    from codegen.zoo.keras_apps import save_keras_model

    model = _hub_model(keras_hub, "albert")
    paths = save_keras_model(model, tmp_path, "albert", formats=("keras",))
    torch_model, source = _convert(paths["keras"], tmp_path)
    loop = LOOP.search(source)
    assert loop and loop[1] == "3" and loop[2] == "hidden_states", source
    assert loop[4] == "hidden_states, attention_mask", source
    assert source.count("attention_mask = padding_mask.unsqueeze(1).bool().unsqueeze(1)") == 1
    assert source.count("F.scaled_dot_product_attention(") == 1
    assert "(one module called 3 times)" in source
    assert len(torch_model.state_dict()) == len(model.weights)
    assert max(_hub_errors(model, torch_model)) <= 1e-5


def test_keras_hub_albert_two_groups_are_two_loops(keras_hub, tmp_path):
    """ALBERT with num_groups=2 over 4 layers: two layer modules, each called twice, one
    after the other on the same `hidden_states`."""
    from test_transformers import _convert

    from codegen.zoo.keras_apps import save_keras_model

    model = _hub_model(keras_hub, "albert", groups=2)
    paths = save_keras_model(model, tmp_path, "albert", formats=("keras",))
    torch_model, source = _convert(paths["keras"], tmp_path)
    loops = LOOP.findall(source)
    assert [(n, hidden, args) for n, hidden, _, args in loops] == [
        ("2", "hidden_states", "hidden_states, attention_mask")] * 2, source
    assert loops[0][2] != loops[1][2]
    assert "(2 modules, called 2 and 2 times)" in source
    assert len(torch_model.state_dict()) == len(model.weights)
    assert max(_hub_errors(model, torch_model)) <= 1e-5


def test_keras_hub_bert_makes_the_mask_once(keras_hub, tmp_path):
    """BERT's layers each turned the padding mask into the attention mask; now the model's
    forward does, once, and every layer takes `attention_mask`."""
    from test_transformers import _convert

    from codegen.zoo.keras_apps import save_keras_model

    model = _hub_model(keras_hub, "bert")
    paths = save_keras_model(model, tmp_path, "bert", formats=("keras",))
    torch_model, source = _convert(paths["keras"], tmp_path)
    top = source.partition("class BertBackbone")[2]
    assert top.count("attention_mask = padding_mask.unsqueeze(1).bool().unsqueeze(1)") == 1
    layers = source.partition("class BertBackbone")[0].partition("\nclass ")[2]
    assert "padding_mask" not in layers and "unsqueeze(1).bool()" not in layers, source
    assert re.search(r"for layer in self\.transformer_layers:\n +(\w+) = layer\(\1, "
                     r"attention_mask\)", top), source
    assert max(_hub_errors(model, torch_model)) <= 1e-5


def test_blocks_no_loop_takes_fall_back_to_shared_leaves(tmp_path, monkeypatch):
    """If the planner makes no loop of the blocks depth.py kept (here: no run is long
    enough), generate() builds again with the layers gathered in shared leaves: never a
    source variable held by two parameters."""
    from codegen.backends.pytorch import modules
    from codegen.backends.pytorch.generate import generate
    from codegen.ir.passes import run_passes
    from codegen.ir.validate import load_ir

    albert_checkpoint(tmp_path / "albert.ckpt", depth=3)
    meta = tmp_path / "albert.ckpt.meta"
    assert codegen("to-ir", meta, "--dst-node", "output", "-o", tmp_path / "ir").returncode == 0
    graph = run_passes(load_ir(tmp_path / "ir"))
    assert "for _ in range(3):" in generate(graph).source
    monkeypatch.setattr(modules, "STACK_MIN", 10)
    generated = generate(run_passes(load_ir(tmp_path / "ir")))
    assert "for _ in range(" not in generated.source
    assert generated.source.count("self.up(") == 3, generated.source
    assert sorted(generated.state.values()) == sorted(set(generated.state.values()))
    assert len(generated.state) == 4
