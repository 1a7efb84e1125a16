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

from codegen.frontends.tensorflow import zoo


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


ZOO_NAMES = sorted(zoo.ZOO)


@pytest.mark.zoo
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_exports_and_compiles(name, tmp_path):
    entry = zoo.ZOO[name]
    size = entry.image_size
    result = codegen("convert", name, "--random-weights", "-o", tmp_path, "-q")
    assert result.returncode == 0, result.stderr
    model = load_generated(tmp_path / "model").load_model()
    check_export_and_compile(model, torch.randn(1, 3, size, size))


def test_folded_batch_norm_only_in_eval(tiny_build):
    """conv_bn folds a BatchNorm into its convolution in eval mode only: same numbers as the
    unfolded pair, and training still uses (and updates) the batch statistics."""
    module = load_generated(tiny_build / "model")
    model = module.load_model()
    unit = model.block1[0].conv1
    x = torch.randn(2, unit.conv.in_channels, 9, 9)
    with torch.no_grad():
        folded = unit(x)
        plain = torch.relu(unit.batch_norm(unit.conv(x)))
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
    before = unit.batch_norm.running_mean.clone()
    model.train()(torch.randn(2, 3, 33, 33))
    assert not torch.equal(before, unit.batch_norm.running_mean)


def test_folded_weights_are_kept_until_a_tensor_changes(tiny_build):
    """Without autograd the folded weights are computed once and kept; an in-place change
    (an optimizer step, load_state_dict) or .to() makes conv_bn fold again."""
    module = load_generated(tiny_build / "model")
    model = module.load_model()
    unit = model.block1[0].conv1
    x = torch.randn(2, 3, 33, 33)

    def unfolded() -> torch.Tensor:  # with autograd on, nothing is kept: folded every call
        with torch.enable_grad():
            return model(x).detach()

    with torch.inference_mode():
        first = model(x)
    kept = unit.batch_norm._folded[2]
    with torch.inference_mode():
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
    assert unit.batch_norm._folded[2] is kept  # not folded again
    torch.testing.assert_close(first, unfolded(), rtol=1e-5, atol=1e-5)

    with torch.no_grad():
        unit.batch_norm.running_var.mul_(4.0)  # in place, as an optimizer or copy_ would
        changed = model(x)
    assert unit.batch_norm._folded[2] is not kept
    assert (changed - first).abs().max() > 1e-3
    torch.testing.assert_close(changed, unfolded(), rtol=1e-5, atol=1e-5)

    other = module.load_model()
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(0.9)
        model.load_state_dict(other.state_dict())
        torch.testing.assert_close(model(x), other(x), rtol=1e-5, atol=1e-5)
        doubled = model.double()(x.double())
    assert doubled.dtype == torch.float64
    torch.testing.assert_close(doubled.float(), other(x), rtol=1e-4, atol=1e-5)
