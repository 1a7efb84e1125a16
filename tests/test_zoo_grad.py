"""Gradient parity on full-size models (marker `zoo`; .ci/run includes it): `codegen verify
--grad` on a TF-slim checkpoint and on Keras applications from their SavedModel and `.keras`
files. Every parameter and input gradient of sum(output * R) must match TensorFlow within
the tolerance, or within the noise floor the check measures where a ReLU flips under
float32 round-off (README: Fine-tuning). The figures are printed (`-s`) for the README.
"""

from __future__ import annotations

import pytest
from conftest import codegen

from codegen.zoo import keras_apps as keras_zoo

pytestmark = pytest.mark.zoo

KERAS = {"MobileNetV2": 96, "ResNet50V2": 64}


def check_grad(model, out_dir, *extra) -> None:
    result = codegen("verify", model, out_dir, "--grad", *extra)
    summary = [line for line in result.stdout.splitlines()
               if line.startswith(("grad:", "forward:", "noise floor", "ok:"))]
    print(f"\n{model}: " + " | ".join(line[:140] for line in summary), end="")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "untied" not in result.stdout


def test_resnet_v2_50_checkpoint_gradients(tmp_path):
    result = codegen("convert", "resnet_v2_50", "--random-weights", "-o", tmp_path, "-q")
    assert result.returncode == 0, result.stderr
    meta = next((tmp_path / "checkpoint").glob("*.meta"))
    check_grad(meta, tmp_path / "model", "--dst-node", "output")


@pytest.mark.parametrize("name", sorted(KERAS))
@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_keras_application_gradients(name, fmt, tmp_path):
    model = keras_zoo.build_keras_model(name, image_size=KERAS[name], seed=1)
    paths = keras_zoo.save_keras_model(model, tmp_path, name, formats=(fmt,))
    assert codegen("to-ir", paths[fmt], "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    check_grad(paths[fmt], tmp_path / "model")
