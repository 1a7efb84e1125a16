"""Gradient parity on full-size models (marker `zoo`; .ci/run includes it): `codegen verify
--grad` on a TF-slim checkpoint and on Keras applications from their SavedModel and `.keras`
files. Every parameter and input gradient of sum(output * R) must match TensorFlow within
the tolerance, or within the noise floor the check measures where a ReLU flips under
float32 round-off (README: Fine-tuning). The figures are printed (`-s`) for the README.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import codegen

pytestmark = pytest.mark.zoo

# image size, seed. MobileNetV2 of seed 1 put a unit within round-off of a ReLU6 kink on this
# machine (TF's float32 gradient 0.119 from float64, above the measured noise floor 0.031;
# ours 6e-07 from float64); seed 3: worst 0.0171, within its floor
KERAS = {"MobileNetV2": (96, 3), "ResNet50V2": (64, 1)}


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
    """The model is built, calibrated and saved in a process of its own, with TF's oneDNN
    rewrites off as verify --grad runs TF (KERAS: why MobileNetV2 takes seed 3)."""
    size, seed = KERAS[name]
    script = ("import sys, pathlib; from codegen.zoo import keras_apps as z; "
              f"m = z.build_keras_model({name!r}, image_size={size}, seed={seed}); "
              f"z.save_keras_model(m, pathlib.Path(sys.argv[1]), {name!r}, formats=({fmt!r},))")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env,
                   capture_output=True)
    paths = {"keras": tmp_path / f"{name}.keras", "savedmodel": tmp_path / name}
    assert codegen("to-ir", paths[fmt], "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    check_grad(paths[fmt], tmp_path / "model")
