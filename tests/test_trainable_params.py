"""Every trainable variable of the source is a trainable parameter of the generated model:
ConvNeXt's layer scales, DINOv2's class token and position table, AdditiveAttention's scale
(each once read by plain arithmetic, and once a non-trainable `Constant` buffer). The
parameter count equals the source's trainable count, `verify` prints both and fails (exit 8)
when they differ, and `verify --grad` compares the layer scales' gradients with TF's."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import (
    assert_clean_error,
    assert_param_count,
    codegen,
    load_generated,
    relative_error,
    small_convnext,
    trainable_count,
)

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.zoo.keras_apps import save_keras_model

FORMATS = ("savedmodel", "keras")
BATCHES = (1, 3)


def _convert(path, out):
    to_ir(path, None, None, out / "ir", quiet=True)
    build(out / "ir", out / "model", quiet=True)
    return load_generated(out / "model"), (out / "model" / "model.py").read_text()


def _compare(keras_model, torch_model, feeds: list[np.ndarray], nchw: bool,
             name: str = "") -> float:
    """Relative error at `feeds` (keyed by input `name` for a model built on a dict)."""
    given = {name: feeds[0]} if name else feeds if len(feeds) > 1 else feeds[0]
    expected = np.asarray(keras_model(given, training=False))
    inputs = [torch.from_numpy(f.transpose(0, 3, 1, 2).copy() if nchw else f) for f in feeds]
    with torch.no_grad():
        ours = torch_model(*inputs).numpy()
    assert ours.shape == expected.shape
    return relative_error(ours, expected)


def _learned(torch_model) -> dict[str, torch.nn.Parameter]:
    """The parameters of the Learned tensors (state key ending in '.value'), by key."""
    return {key: p for key, p in torch_model.named_parameters() if key.endswith(".value")}


# -- ConvNeXt: layer scales ------------------------------------------------------------------
@pytest.fixture(scope="module")
def convnext(tmp_path_factory):
    """A small ConvNeXt (conftest.small_convnext, 4 stages) at 64x64."""
    model = small_convnext([1, 1, 2, 1], 3, "convnext_small_test")
    folder = tmp_path_factory.mktemp("convnext")
    paths = save_keras_model(model, folder, "convnext")
    built = {fmt: (folder / fmt, *_convert(paths[fmt], folder / fmt)) for fmt in FORMATS}
    return model, paths, built


@pytest.mark.parametrize("fmt", FORMATS)
def test_convnext_layer_scales_are_parameters(convnext, fmt) -> None:
    model, _, built = convnext
    out, module, source = built[fmt]
    torch_model = module.load_model()
    scales = _learned(torch_model)
    assert len(scales) == 5 and all(key.endswith("layer_scale.value") for key in scales), scales
    # (one per channel, [1, C, 1, 1]: NCHW)
    assert sorted(p.shape[1] for p in scales.values()) == [8, 16, 24, 24, 32]
    assert all(p.requires_grad and p.shape == (1, p.shape[1], 1, 1) for p in scales.values())
    assert "Learned(" in source and "self.layer_scale()" in source
    assert_param_count(out / "model", trainable_count(model))
    rng = np.random.default_rng(4)
    for batch in BATCHES:
        images = rng.uniform(-1, 1, (batch, 64, 64, 3)).astype("float32")
        assert _compare(model, torch_model, [images], nchw=True) <= 1e-4, batch


def test_verify_prints_the_parameter_count_and_fails_when_it_differs(convnext, tmp_path) -> None:
    from codegen.verify import TFRunner
    from codegen.verify.params import count_parameters

    model, paths, built = convnext
    out = built["savedmodel"][0] / "model"
    expected = f"{trainable_count(model):,}"
    runner = TFRunner(paths["savedmodel"], None)  # what verify reads the source's count from
    line = count_parameters(out, runner.trainable_count, runner.trainable_unread).line()
    assert line == f"parameters: source {expected} trainable = generated {expected}"
    # a copy whose layer scales are buffers again (what codegen wrote before): exit 8
    broken = shutil.copytree(out, tmp_path / "broken")
    text = (broken / "model.py").read_text()
    fixed = 'self.value = nn.Parameter(torch.zeros(shape))'
    assert fixed in text
    (broken / "model.py").write_text(text.replace(
        fixed, 'self.register_buffer("value", torch.zeros(shape))'))
    result = codegen("verify", paths["savedmodel"], broken)
    assert_clean_error(result, 8, "trainable parameters, the source", expected)
    assert f"parameters: source {expected} trainable != generated " in result.stdout


def test_verify_grad_compares_the_layer_scales(convnext) -> None:
    from codegen.verify.grad import verify_grad

    _, paths, built = convnext
    report = verify_grad(paths["keras"], None, built["keras"][0] / "model", batch=2)
    rows = {row.name: row for row in report.rows}
    scales = [name for name in rows if name.endswith("layer_scale.value")]
    assert len(scales) == 5, sorted(rows)
    assert all(rows[name].tf_grad_max > 0 for name in scales)
    assert not report.problems(1e-4), report.problems(1e-4)
    # (the depthwise kernels, read by TF through a reshape, are what --grad leaves out today)
    uncompared = report.uncompared_parameters()
    assert all(key.endswith("depthwise_conv.weight") for key in uncompared), uncompared


# -- AdditiveAttention: its scale --------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_additive_attention_scale_is_a_parameter(fmt, tmp_path) -> None:
    import_tf()
    import keras

    keras.utils.set_random_seed(5)
    query = keras.Input((None, 8), name="query")
    value = keras.Input((None, 8), name="value")
    attended = keras.layers.AdditiveAttention(use_scale=True, name="attention")(
        [keras.layers.Dense(8, name="q_proj")(query), value])
    model = keras.Model([query, value], keras.layers.Dense(4, name="head")(attended))
    model.get_layer("attention").scale.assign(np.linspace(0.5, 1.5, 8).astype("float32"))
    paths = save_keras_model(model, tmp_path, "additive", formats=(fmt,))
    module, _ = _convert(paths[fmt], tmp_path)
    torch_model = module.load_model()
    scale = _learned(torch_model)
    assert len(scale) == 1 and next(iter(scale.values())).shape == (8,), scale
    np.testing.assert_array_equal(next(iter(scale.values())).detach().numpy(),
                                  np.linspace(0.5, 1.5, 8).astype("float32"))
    assert_param_count(tmp_path / "model", trainable_count(model))
    rng = np.random.default_rng(6)
    for length in (5, 9):
        for batch in BATCHES:
            feeds = [rng.normal(0, 1, (batch, length, 8)).astype("float32") for _ in range(2)]
            assert _compare(model, torch_model, feeds, nchw=False) <= 1e-4, (length, batch)


# -- keras-hub DINOv2: class token, position table -----------------------------------------------
@pytest.mark.parametrize("size", [16, 24])
def test_dinov2_backbone(size, tmp_path) -> None:
    """keras-hub's DINOv2 takes one image size, fixed when it is built: its position table
    (trained at 24x24) is resampled then, into the trainable variable the model adds. Two
    models, built at 16 (resampled) and 24 (as trained), each from both files."""
    keras_hub = pytest.importorskip("keras_hub")
    import_tf()
    import keras

    keras.utils.set_random_seed(7)
    model = keras_hub.models.DINOV2Backbone(
        patch_size=4, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64,
        image_shape=(size, size, 3), position_embedding_shape=(24, 24, 3),
        layer_scale_init_value=0.5)
    rng = np.random.default_rng(size)
    for variable in model.weights:
        if "token" in variable.path or "position_embeddings" in variable.path:
            variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
    paths = save_keras_model(model, tmp_path, "dinov2")
    mask_token = int(np.prod(model.get_layer("embeddings").mask_token.shape))
    # loading the .keras file resamples the position table again, from the one trained at
    # 24x24 (set independently above): the reference is the model as the file gives it
    references = {"savedmodel": model, "keras": keras.saving.load_model(paths["keras"])}
    for fmt in FORMATS:
        model = references[fmt]
        module, source = _convert(paths[fmt], tmp_path / fmt)
        torch_model = module.load_model()
        learned = {key.rpartition(".")[0].rpartition(".")[2]: p
                   for key, p in _learned(torch_model).items()}
        patches = (size // 4) ** 2
        assert learned["cls_token"].shape == (1, 1, 32)
        assert learned["interpolated_position_embeddings"].shape == (1, patches + 1, 32)
        assert ".flatten(1, 2)" in source and "reshape(-1, -1" not in source
        # the mask token is trained only in pretraining: the model never reads it
        assert_param_count(tmp_path / fmt / "model", trainable_count(model) - mask_token)
        for batch in BATCHES:
            images = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
            error = _compare(model, torch_model, [images], nchw=True, name="images")
            assert error <= 1e-4, (fmt, batch)


# -- TF1: the TRAINABLE_VARIABLES collection -------------------------------------------------------
def test_tf1_checkpoint_counts_its_trainable_variables(tiny_checkpoint, tiny_build) -> None:
    from codegen.frontends.tensorflow.loader import load_model

    loaded = load_model(tiny_checkpoint.with_name(tiny_checkpoint.name + ".meta"))
    assert loaded.trainable_count == 15_733  # the weights, biases, BN scales and offsets
    assert_param_count(tiny_build / "model", loaded.trainable_count)


def test_ir_files_without_trainable_still_load() -> None:
    from codegen.ir.weights import WeightEntry

    entry = {"file": "weights/w.npy", "shape": [3], "dtype": "float32", "sha256": "0" * 64}
    assert WeightEntry.from_json(entry).trainable is False
    assert "trainable" not in WeightEntry.from_json(entry).to_json()
    assert WeightEntry.from_json({**entry, "trainable": True}).to_json()["trainable"] is True


def test_a_frozen_layer_is_not_trained(tmp_path) -> None:
    """A Keras layer with trainable=False (a frozen backbone) keeps its parameters fixed in
    the generated model, so fine-tuning trains what Keras trains."""
    import_tf()
    import keras

    keras.utils.set_random_seed(8)
    images = keras.Input((8, 8, 3), name="image")
    features = keras.layers.Conv2D(4, 3, name="backbone_conv")(images)
    features = keras.layers.BatchNormalization(name="backbone_bn")(features)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(images, keras.layers.Dense(3, name="head")(pooled))
    for name in ("backbone_conv", "backbone_bn"):
        model.get_layer(name).trainable = False
    paths = save_keras_model(model, tmp_path, "frozen", formats=("keras",))
    module, source = _convert(paths["keras"], tmp_path)
    assert_param_count(tmp_path / "model", trainable_count(model))  # the head's 15
    torch_model = module.build_model()
    trained = {key for key, p in torch_model.named_parameters() if p.requires_grad}
    assert trained == {"head.weight", "head.bias"}, trained
    assert source.count('("weight", "bias")') == 2, source
