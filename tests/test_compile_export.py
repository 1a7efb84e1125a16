"""Generated models under torch.export.export and torch.compile(fullgraph=True), and a
`codegen --help` that imports neither TensorFlow nor torch.

The fast tests use the tiny ResNet V2; the zoo tests convert every TF-slim zoo net (random
weights, full size) and check both on each, with the aot_eager backend (Dynamo's full
graph capture and AOTAutograd, without the minutes of Inductor's C++ compilation).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from conftest import check_export_and_compile, codegen, load_generated


def test_tiny_model_exports_and_compiles(tiny_build):
    model = load_generated(tiny_build / "model").load_model()
    check_export_and_compile(model, torch.randn(2, 3, 33, 33))


def test_tiny_model_without_channels_last_is_the_same(tiny_build):
    module = load_generated(tiny_build / "model")
    x = torch.randn(2, 3, 33, 33)
    fast, plain = module.load_model(), module.load_model(channels_last=False)
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.conv1.weight.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)


def test_help_is_instant_and_imports_no_framework():
    code = ("import sys, time\nstart = time.perf_counter()\nfrom codegen.cli import parser\n"
            "parser().format_help()\nprint(time.perf_counter() - start)\n"
            "print(sorted({'torch', 'tensorflow', 'numpy'} & set(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, imported = result.stdout.split("\n")[:2]
    assert imported == "[]"
    assert float(seconds) < 0.5
    start = time.perf_counter()
    assert codegen("--help").returncode == 0
    assert time.perf_counter() - start < 2.0  # the whole interpreter start, on a busy machine


# Every TF-slim zoo net's model passes torch.export and torch.compile: checked in
# tests/test_zoo.py::test_every_zoo_model_at_its_default_size, on the conversion it makes.


def test_fuse_folds_batch_norm_for_inference_only(tiny_build):
    """load_model() fuses each conv + BatchNorm pair (an explicit fuse() step, nothing hidden
    in forward): same numbers as the unfused pair. build_model() and load_model(fused=False)
    keep every BatchNorm with its state_dict keys, and training still updates them."""
    module = load_generated(tiny_build / "model")
    model, plain = module.load_model(), module.load_model(fused=False)
    unit = model.block1[0].conv1
    assert isinstance(unit.batch_norm, torch.nn.Identity) and unit.conv.bias is not None
    assert type(unit.batch_norm).__name__ == "FusedIntoConv"  # print(model) shows where it went
    assert isinstance(plain.block1[0].conv1.batch_norm, torch.nn.BatchNorm2d)
    assert list(plain.state_dict()) == list(module.build_model().state_dict())
    x = torch.randn(2, 3, 33, 33)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)
    assert module.fuse(model) is model  # fusing twice changes nothing
    with pytest.raises(RuntimeError, match=r"use load_model\(fused=False\) or build_model\(\)"):
        model.train()  # a fused model has no BatchNorm to train: never trained by mistake
    model.eval()  # (eval mode is fine)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)
    trained = plain.block1[0].conv1.batch_norm
    before = trained.running_mean.clone()
    plain.train()(x)
    assert not torch.equal(before, trained.running_mean)
    source = (tiny_build / "model" / "model.py").read_text()
    assert "_version" not in source and "data_ptr" not in source and "_forward_hooks" not in source
