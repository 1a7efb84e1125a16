"""codegen verify --per-layer: every layer against its TF tensor; a wrong weight is found."""

from __future__ import annotations

import json
import shutil

import numpy as np
from conftest import codegen, copy_with_scaled_channel, read_json


def test_per_layer_table_on_a_healthy_model(tiny_checkpoint, tiny_build, tmp_path):
    table = tmp_path / "layers.json"
    result = codegen("verify", f"{tiny_checkpoint}.meta", tiny_build / "model", "--per-layer",
                     "--float64", "--json", table)
    assert result.returncode == 0, result.stdout + result.stderr
    report = read_json(table)
    layers = read_json(tiny_build / "model" / ".codegen" / "layers.json")
    rows = report["rows"]
    assert len(rows) == len(layers) + 1 == 37  # every layer module, then the model output
    assert report["skipped"] == [] and report["first_jump"] is None
    assert [o["batch"] for o in report["outputs"]] == [4, 1]  # the whole-model lines too
    assert all(o["rel_error"] < 1e-5 for o in report["outputs"])
    first = rows[0]  # the conv absorbed its BiasAdd: compared with the BiasAdd's tensor
    assert (first["module"], first["tf_tensor"]) == ("conv1", "resnet_v2_tiny/conv1/BiasAdd:0")
    assert first["shape"] == [2, 64, 17, 17]  # NCHW, TF's NHWC tensor was transposed
    assert rows[-1]["tf_tensor"] == "output:0" and rows[-1]["shape"] == [2, 5]
    for row in rows:
        assert row["rel"] < 1e-5 and not row["jump"]
        assert 0 < row["tf_vs_f64"] < 1e-5 and 0 < row["ours_vs_f64"] < 1e-5
    assert "no jump" in result.stdout and "from float64" in result.stdout
    assert "block2.2.conv3" in result.stdout  # the rich table lists module paths


def test_a_broken_weight_is_pinpointed(tiny_checkpoint, tiny_build, tmp_path):
    broken = copy_with_scaled_channel(tiny_build / "model", tmp_path / "model",
                                      "block2.1.conv2.conv.weight", channel=0, factor=1.5)
    table = tmp_path / "layers.json"
    result = codegen("verify", f"{tiny_checkpoint}.meta", broken, "--json", table)
    assert result.returncode == 8, result.stdout + result.stderr
    report = read_json(table)
    jump = report["first_jump"]
    assert jump["module"] == "block2.1.conv2.conv"
    assert jump["tf_tensor"] == "resnet_v2_tiny/block2/unit_2/bottleneck_v2/conv2/Conv2D:0"
    rows = report["rows"]
    index = next(i for i, row in enumerate(rows) if row["jump"])
    assert all(row["rel"] < 1e-5 for row in rows[:index])  # everything before is fine
    assert rows[index]["rel"] > 0.05
    assert "first jump at block2.1.conv2.conv" in result.stdout
    assert "the error starts at block2.1.conv2.conv" in result.stderr
    assert "Traceback" not in result.stderr


def test_per_layer_needs_the_layer_map(tiny_checkpoint, tiny_build, tmp_path):
    old = tmp_path / "model"
    shutil.copytree(tiny_build / "model", old)
    (old / ".codegen" / "layers.json").unlink()  # built by an older codegen
    result = codegen("verify", f"{tiny_checkpoint}.meta", old, "--per-layer")
    assert result.returncode == 3, result.stderr
    assert "layers.json" in result.stderr and "codegen build" in result.stderr


def test_build_ends_with_a_summary(tiny_build, tmp_path):
    result = codegen("build", tiny_build / "ir", "-o", tmp_path / "model")
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "model" / "weights" / "index.json").read_text())
    parameters = sum(int(np.prod(entry["shape"])) for entry in index.values()
                     if entry["shape"])  # num_batches_tracked counters are not parameters
    written = sum(1 for path in (tmp_path / "model").rglob("*") if path.is_file())
    lines = [line for line in (tmp_path / "model" / "model.py").read_text().splitlines()
             if line.strip()]
    assert result.stderr.startswith(
        f"wrote {tmp_path}/model/model.py: 4 classes, {len(lines)} lines, {parameters:,} "
        f"parameters; {written} files written (weights: {len(index)} written, 0 unchanged)")
    assert codegen("build", tiny_build / "ir", "-o", tmp_path / "model", "-q").stderr == ""
