"""T5's relative-position bias reads as Hugging Face's modeling_t5.py writes it (issue 21):
the bucket arithmetic keras-hub's T5MultiHeadAttention spells out (abs or -min, a log,
casts, minimum, where) is one generated helper `relative_position_bucket(memory - context,
bidirectional=..., num_buckets=..., max_distance=...)` called where the bias is made
(rewrites/position_bucket.py). The constants are read from the graph and the match is
checked on TF; a formula that differs is left as arithmetic (and stays exact). Tiny configs
built offline, from the SavedModel; skipped without keras-hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_keras_hub import _spread
from test_keras_hub_sizes import VOCAB, _errors
from test_transformers import _convert

from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.rewrites.position_bucket import relative_position_bucket
from codegen.zoo.keras_apps import save_keras_model

keras_hub = pytest.importorskip("keras_hub")
RELATIVE = np.arange(-1000, 1001, dtype="int32").reshape(1, -1)


def _flat(source: str) -> str:
    return " ".join(source.replace("(", "( ").replace(")", " )").split())


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    import_tf()
    import keras

    keras.utils.set_random_seed(4)
    model = keras_hub.models.T5Backbone(vocabulary_size=VOCAB, num_layers=2, num_heads=4,
                                        hidden_dim=32, intermediate_dim=64)
    _spread(model, 4)
    paths = save_keras_model(model, tmp_path_factory.mktemp("t5"), "t5",
                             formats=("savedmodel",))
    torch_model, source = _convert(paths["savedmodel"], tmp_path_factory.mktemp("t5_out"))
    return model, torch_model, source


def test_t5_bias_is_one_bucket_helper(t5) -> None:
    model, torch_model, source = t5
    flat = _flat(source)
    assert source.count("def relative_position_bucket(") == 1
    # the encoder's buckets are bidirectional, the decoder's causal ones are not
    for bidirectional in (True, False):
        assert (f"relative_position_bucket( sub, bidirectional={bidirectional}, "
                "num_buckets=32, max_distance=128 )") in flat
    assert "positions_2.unsqueeze( 0 ) - positions.unsqueeze( 1 )" in flat  # memory - context
    assert "self.embedding( buckets ).permute( 2, 0, 1 ).unsqueeze( 0 )" in flat
    assert source.count("torch.log(") == 1  # in the helper only: no arithmetic left
    assert "Constant((), dtype=torch.int32)" not in source and ".item()" not in source
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors


def _generated_helper(source: str):
    namespace: dict = {}
    start = source.index("def relative_position_bucket(")
    end = source.index("\nclass ", start)
    exec(compile("import math\nimport torch\n" + source[start:end], "helper", "exec"),  # noqa: S102
         namespace)
    return namespace["relative_position_bucket"]


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (16, 40), (64, 300), (8, 20)])
def test_helper_is_keras_hubs_formula(t5, bidirectional, num_buckets, max_distance) -> None:
    """The generated helper, the rewrite's numpy reference and keras-hub's own TF function
    agree value for value over +-1000."""
    from keras_hub.src.models.t5.t5_multi_head_attention import T5MultiHeadAttention

    tf = import_tf()
    expected = np.asarray(T5MultiHeadAttention._relative_position_bucket(
        tf.constant(RELATIVE), bidirectional=bidirectional, num_buckets=num_buckets,
        max_distance=max_distance))
    helper = _generated_helper(t5[2])
    ours = helper(torch.from_numpy(RELATIVE), bidirectional=bidirectional,
                  num_buckets=num_buckets, max_distance=max_distance)
    assert ours.dtype == torch.int32
    np.testing.assert_array_equal(ours.numpy(), expected)
    np.testing.assert_array_equal(
        relative_position_bucket(RELATIVE, bidirectional, num_buckets, max_distance), expected)


def _tampered_bucket(relative, num_buckets: int, max_distance: int):
    """keras-hub's bidirectional formula with the large buckets scaled 3 wider: the same
    ops and structure, other values (the check on TF must refuse it)."""
    from keras import ops

    num_buckets //= 2
    buckets = ops.cast(ops.greater(relative, 0), "int32") * num_buckets
    relative = ops.abs(relative)
    max_exact = num_buckets // 2
    large = max_exact + ops.cast(
        ops.log(ops.cast(relative, "float32") / ops.cast(max_exact, "float32"))
        / ops.cast(ops.log(max_distance / max_exact), "float32")
        * (num_buckets - max_exact + 3), "int32")
    large = ops.minimum(large, num_buckets - 1)
    return buckets + ops.where(ops.less(relative, max_exact), relative, large)


def _bias_model(tmp_path, bidirectional: bool, num_buckets: int, max_distance: int,
                tampered: bool):
    """x [N, T, 4] + table[bucket(arange(T)[None] - arange(T)[:, None])] -> [N, T, T, 4]."""
    import keras
    from keras import ops
    from keras_hub.src.models.t5.t5_multi_head_attention import T5MultiHeadAttention

    class Bias(keras.layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=(num_buckets, 4), initializer="random_normal")

        def call(self, x):
            length = ops.shape(x)[1]
            relative = ops.arange(length)[None, :] - ops.arange(length)[:, None]
            if tampered:
                buckets = _tampered_bucket(relative, num_buckets, max_distance)
            else:
                buckets = T5MultiHeadAttention._relative_position_bucket(
                    relative, bidirectional=bidirectional, num_buckets=num_buckets,
                    max_distance=max_distance)
            return x[:, :, None, :] + ops.take(self.table, buckets, axis=0)[None]

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, Bias()(inputs))
    paths = save_keras_model(model, tmp_path / "src", "bias", formats=("savedmodel",))
    torch_model, source = _convert(paths["savedmodel"], tmp_path)
    rng = np.random.default_rng(0)
    for batch, length in ((1, 1), (3, 7), (2, 60)):
        x = rng.normal(0, 1, (batch, length, 4)).astype("float32")
        with torch.no_grad():
            ours = torch_model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    return source


@pytest.mark.parametrize("bidirectional", [True, False])
def test_other_constants_are_read_from_the_graph(tmp_path, bidirectional) -> None:
    """num_buckets 16, max_distance 40 (log(40 / 4), not a power of two): the call says so."""
    import_tf()
    source = _bias_model(tmp_path, bidirectional, 16, 40, tampered=False)
    assert (f"relative_position_bucket( sub, bidirectional={bidirectional}, num_buckets=16, "
            "max_distance=40 )") in _flat(source)


def test_a_different_formula_is_not_rewritten(tmp_path) -> None:
    """The pattern's ops with another scale: TF's values are not the formula's, so it
    stays arithmetic (and exact)."""
    import_tf()
    source = _bias_model(tmp_path, True, 16, 40, tampered=True)
    assert "relative_position_bucket(" not in source and "torch.log(" in source
