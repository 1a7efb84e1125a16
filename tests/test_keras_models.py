"""The Keras applications matrix (zoo marker): each net with calibrated random weights,
converted from its SavedModel and from its `.keras` file (and, for three of them, from a
frozen `.pb`), must match TensorFlow within 1e-4 at batch 1 and batch 4, and its generated
model must work under torch.export.export and torch.compile(fullgraph=True).

Everything runs in this process (TensorFlow is imported once); each model is built once
and shared by its formats. The measured figures are printed (`-s`) for the README.
"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import assert_param_count, check_export_and_compile, trainable_count

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated, verify
from codegen.zoo import keras_apps as keras_zoo

pytestmark = pytest.mark.zoo

# image sizes keep the matrix within the CI budget; the ops and patterns are the same at 224
MODELS = {
    "ResNet50V2": 64,
    "ResNet152V2": 64,
    "MobileNetV2": 96,
    "MobileNetV3Small": 224,
    "EfficientNetB0": 64,
    "DenseNet121": 64,
    "InceptionV3": 139,
    "NASNetMobile": 96,
    "ConvNeXtTiny": 64,
}
FROZEN = {"ResNet50V2", "MobileNetV2", "EfficientNetB0"}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """name -> {format: path}, built lazily, once per model."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            folder = tmp_path_factory.mktemp(name)
            model = keras_zoo.build_keras_model(name, image_size=MODELS[name], seed=1)
            paths = keras_zoo.save_keras_model(model, folder, name)
            paths["trainable"] = trainable_count(model)
            if name in FROZEN:
                paths["pb"] = folder / f"{name}.pb"
                paths["pb_output"] = keras_zoo.save_frozen_graph(paths["savedmodel"], paths["pb"])[1]
            cache[name] = paths
        return cache[name]

    return get


CASES = [(name, fmt) for name in MODELS for fmt in ("savedmodel", "keras")]
CASES += [(name, "pb") for name in MODELS if name in FROZEN]


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_keras_application_matches_tensorflow(name, fmt, saved_models, tmp_path) -> None:
    paths = saved_models(name)
    dst = paths["pb_output"] if fmt == "pb" else None
    to_ir(paths[fmt], None, dst, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    results = verify(paths[fmt], None, tmp_path / "model", batches=(4, 1))
    for r in results:
        print(f"\n{name} [{fmt}] batch {r.batch}: {r.rel_error:.3g} "
              f"(float64: TF {r.tf_vs_f64:.3g}, ours {r.ours_vs_f64:.3g})", end="")
        assert r.rel_error <= TOLERANCE, (name, fmt, r)
        assert r.ours_vs_f64 <= max(2 * r.tf_vs_f64, 1e-6), (name, fmt, r)
    source = (tmp_path / "model" / "model.py").read_text()
    if name != "ConvNeXtTiny":  # Keras' batch norm arithmetic became real BatchNorm layers
        assert "nn.BatchNorm2d(" in source
        assert not re.search(r"class Batchnorm|self\.batchnorm", source)  # no leftovers
    if fmt != "pb":  # (a frozen GraphDef does not say what is trainable)
        assert_param_count(tmp_path / "model", paths["trainable"])
    module = import_generated(tmp_path / "model")
    assert sum(p.numel() for p in module.build_model().parameters()) > 1e5
    if fmt == "savedmodel":  # the same code for every format: export and compile it once
        size = MODELS[name]
        check_export_and_compile(module.load_model(), torch.randn(1, 3, size, size))
