"""Sizes known only at run time as values (DESIGN.md; issue 21): small tf.functions whose
batch and sequence length are unknown (`TensorSpec([None, None, ...])`), saved as
SavedModels, converted, and compared with TensorFlow at two lengths and batch 1 and 3.
Each computes something from tf.shape at run time (a causal mask from tf.range, a reshape
to [batch, seq_len, heads, size], a tile by run-time multiples, a fill); the generated
code writes the sizes as Python (`x.shape[1]`), never `.item()`, and passes
torch.export.export with batch and length dynamic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

LENGTHS, BATCHES = (1, 7, 12), (1, 3)


def _convert(fn, specs, tmp_path):
    """fn(*tensors) saved as a SavedModel with a run-time-sized signature, converted."""
    tf = import_tf()
    module = tf.Module()
    module.f = tf.function(fn, input_signature=specs)
    path = tmp_path / "saved"
    tf.saved_model.save(module, str(path), signatures=module.f.get_concrete_function())
    to_ir(path, None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    return module.f, import_generated(tmp_path / "model").load_model(), source


def _compare(tf_fn, model, make) -> None:
    rng = np.random.default_rng(3)
    for batch in BATCHES:
        for length in LENGTHS:
            feeds = make(rng, batch, length)
            expected = np.asarray(tf_fn(*feeds))
            with torch.no_grad():
                ours = model(*(torch.from_numpy(f) for f in feeds)).numpy()
            assert ours.shape == expected.shape, (batch, length)
            if expected.dtype.kind in "biu":
                assert ours.dtype == expected.dtype and np.array_equal(ours, expected)
            else:
                scale = max(np.abs(expected).max(), 1e-6)
                assert np.abs(ours - expected).max() / scale <= 1e-5, (batch, length)


def _floats(rng, batch, length, width=32):
    return [rng.normal(0, 1, (batch, length, width)).astype("float32")]


def _export(model, example, dims=(0, 1)) -> None:
    """torch.export with batch and length dynamic; the exported program agrees with the
    model at another batch and length."""
    batch, length = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("length", min=1,
                                                                               max=512)
    names = {0: batch, 1: length}
    shapes = tuple({axis: names[axis] for axis in dims} for _ in example)
    with torch.no_grad():
        exported = torch.export.export(model, tuple(example), dynamic_shapes=shapes)
        other = [torch.cat([t, t], 0)[:, :5] if t.dim() > 1 else t for t in example]
        torch.testing.assert_close(exported.module()(*other), model(*other))


def test_causal_mask_from_range(tmp_path) -> None:
    """Shape -> StridedSlice -> Range -> a causal mask, applied to scores."""
    tf = import_tf()

    def fn(x):
        seq_len = tf.shape(x)[1]
        positions = tf.range(seq_len)
        mask = positions[:, None] >= positions[None, :]
        scores = tf.matmul(x, x, transpose_b=True)
        return tf.where(mask[None], scores, tf.fill(tf.shape(scores), -1e9))

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 32])], tmp_path)
    _compare(tf_fn, model, _floats)
    assert "torch.arange(" in source and ".item()" not in source
    _export(model, [torch.randn(2, 6, 32)])


def test_reshape_to_batch_seq_heads_size(tmp_path) -> None:
    """tf.reshape(x, [batch, seq_len, 4, 8]) with both read from tf.shape at run time."""
    tf = import_tf()

    def fn(x):
        shape = tf.shape(x)
        heads = tf.reshape(x * 2.0, tf.stack([shape[0], shape[1], 4, 8]))
        return tf.transpose(heads, [0, 2, 1, 3])

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 32])], tmp_path)
    _compare(tf_fn, model, _floats)
    assert ".item()" not in source
    _export(model, [torch.randn(2, 6, 32)])


def test_reshape_merges_run_time_sizes(tmp_path) -> None:
    """[batch * seq_len, 32] and back: size arithmetic (Mul) on run-time sizes."""
    tf = import_tf()

    def fn(x):
        batch, seq_len = tf.shape(x)[0], tf.shape(x)[1]
        flat = tf.reshape(x, [batch * seq_len, 32])
        flat = tf.nn.relu(flat) - 0.5
        return tf.reshape(flat, [batch, seq_len // 1, 32])

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 32])], tmp_path)
    _compare(tf_fn, model, _floats)
    assert ".reshape(x.shape[0], " in source  # the sizes as values, the batch named
    _export(model, [torch.randn(2, 6, 32)])


def test_reshape_by_a_shape_vector_computed_at_run_time(tmp_path) -> None:
    """[batch, 2 * seq_len, 16] of [batch, seq_len, 32]: no static reading can say it."""
    tf = import_tf()

    def fn(x):
        shape = tf.shape(x)
        return tf.reshape(x, tf.concat([shape[:1], [shape[1] * 2], [16]], axis=0)) + 1.0

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 32])], tmp_path)
    _compare(tf_fn, model, _floats)
    assert ".reshape(" in source and "-1" not in source
    _export(model, [torch.randn(2, 6, 32)])


def test_tile_by_run_time_multiples(tmp_path) -> None:
    """tf.tile of a learned-like constant by [batch, 1, 1] and of x by constant multiples."""
    tf = import_tf()
    token = tf.constant(np.linspace(-1, 1, 32, dtype="float32").reshape(1, 2, 16))

    def fn(x):
        batch = tf.shape(x)[0]
        tokens = tf.tile(token, tf.stack([batch, 3, 1]))
        return tf.concat([tokens, tf.tile(x, [1, 2, 1])], axis=1)

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 16])], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: _floats(rng, b, t, 16))
    assert ".repeat(" in source
    _export(model, [torch.randn(2, 6, 16)])


def test_fill_by_run_time_shape(tmp_path) -> None:
    """tf.fill([batch, seq_len, 3], 0.5) and tf.ones of a run-time shape."""
    tf = import_tf()

    def fn(x):
        shape = tf.shape(x)
        half = tf.fill(tf.stack([shape[0], shape[1] + 1, 3]), 0.5)
        return half * tf.reduce_sum(x, axis=-1, keepdims=True)[:, :1] + tf.cast(shape[1], "float32")

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 8])], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: _floats(rng, b, t, 8))
    assert "torch.full(" in source and ".item()" not in source
    _export(model, [torch.randn(2, 6, 8)])


def test_alibi_like_positions(tmp_path) -> None:
    """Bloom's ALiBi: arange(key_length) reshaped to [1, 1, T] by a run-time size, times
    per-head slopes, added to scores."""
    tf = import_tf()
    slopes = tf.constant(np.array([0.5, 0.25], "float32").reshape(2, 1, 1))

    def fn(x):
        length = tf.shape(x)[1]
        positions = tf.reshape(tf.cast(tf.range(length), "float32"), tf.stack([1, 1, length]))
        bias = slopes * positions  # [2, 1, T]
        scores = tf.matmul(x, x, transpose_b=True)[:, None]  # [N, 1, T, T]
        return tf.nn.softmax(scores + bias[None], axis=-1)

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 16])], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: _floats(rng, b, t, 16))
    assert "torch.arange(x.shape[1]" in source
    _export(model, [torch.randn(2, 6, 16)])


def test_size_and_range_with_start_and_step(tmp_path) -> None:
    """tf.size, tf.range(start, limit, delta) and max/min of sizes."""
    tf = import_tf()

    def fn(ids):
        length = tf.shape(ids)[1]
        stop = tf.maximum(length, 4) + tf.size(ids) // tf.shape(ids)[0]
        steps = tf.range(1, stop, 2)
        return tf.cast(steps, "float32")[None, :] * tf.cast(tf.minimum(length, 3), "float32")

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None], tf.int32)], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: [rng.integers(0, 9, (b, t)).astype("int32")])
    assert "max(" in source and "min(" in source
    _export(model, [torch.zeros(2, 6, dtype=torch.int32)])


@pytest.mark.parametrize("axis", [0, 1])
def test_stack_of_tensors(axis, tmp_path) -> None:
    tf = import_tf()

    def fn(x):
        return tf.stack([x, x * 2.0, -x], axis=axis)

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 4])], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: _floats(rng, b, t, 4))
    assert "torch.stack(" in source


def test_size_read_as_a_tensor(tmp_path) -> None:
    """sqrt(float(seq_len)) and maximum(x, seq_len): the size becomes a tensor there."""
    tf = import_tf()

    def fn(x):
        length = tf.cast(tf.shape(x)[1], "float32")
        return tf.maximum(x * 4.0, length) / tf.sqrt(length)

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 8])], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: _floats(rng, b, t, 8))
    assert "torch.tensor(" in source
    _export(model, [torch.randn(2, 6, 8)])


def test_grouped_query_repeat_of_heads(tmp_path) -> None:
    """tf.repeat of the key/value heads [N, T, 2, 8] (ExpandDims -> Tile -> Reshape by
    run-time sizes): x.repeat_interleave(2, dim=2), not an image resize."""
    tf = import_tf()

    def fn(x):
        shape = tf.shape(x)
        heads = tf.reshape(x, tf.stack([shape[0], shape[1], 2, 8]))
        return tf.repeat(heads, 2, axis=2) * 2.0

    tf_fn, model, source = _convert(fn, [tf.TensorSpec([None, None, 16])], tmp_path)
    _compare(tf_fn, model, lambda rng, b, t: _floats(rng, b, t, 16))
    assert ".repeat_interleave(2, dim=2)" in source and "interpolate" not in source
    _export(model, [torch.randn(2, 6, 16)])
