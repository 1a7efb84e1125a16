"""The Python API: codegen.convert / codegen.build, importable without TF or torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import load_generated, relative_error, run_tf


def test_import_codegen_loads_neither_tensorflow_nor_torch():
    code = ("import sys, codegen; "
            "print(sorted(m for m in ('tensorflow', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
    assert set(__import__("codegen").__all__) == {"build", "convert"}


def test_build_returns_paths_and_figures(tiny_build, tmp_path):
    import codegen

    report = codegen.build(tiny_build / "ir", tmp_path / "model")
    assert report.model_py == tmp_path / "model" / "model.py" and report.model_py.is_file()
    assert report.weights_dir.is_dir()
    assert (report.classes, report.weights_written, report.weights_kept) == (4, 108, 0)
    model = load_generated(tmp_path / "model").load_model(fused=False)
    assert report.parameters == sum(t.numel() for t in model.state_dict().values()
                                    if t.dtype != torch.int64)
    assert report.files_written == 114
    again = codegen.build(str(tiny_build / "ir"), str(tmp_path / "model"))  # str paths too
    assert (again.weights_written, again.weights_kept) == (0, 108)


def test_convert_a_checkpoint_and_verify(tiny_checkpoint, tmp_path):
    import codegen

    report = codegen.convert(f"{tiny_checkpoint}.meta", tmp_path / "out", verify=True)
    assert report.ir_dir == tmp_path / "out" / "ir" and (report.ir_dir / "graph.json").is_file()
    assert report.model_py == tmp_path / "out" / "model" / "model.py"
    assert report.pth == tmp_path / "out" / "model.pth"
    state = torch.load(report.pth, weights_only=True)
    assert len(state) == 108
    assert [c.batch for c in report.verified] == [4, 1]
    assert report.worst_error < 1e-5
    model = load_generated(report.model_py.parent).build_model()
    model.load_state_dict(state, strict=True)
    model.eval()
    x = np.random.default_rng(3).uniform(-1, 1, (2, 33, 33, 3)).astype("float32")
    with torch.no_grad():
        ours = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert relative_error(ours, run_tf(tiny_checkpoint, x)) < 1e-5


def test_api_errors_are_codegen_errors(tmp_path):
    import codegen
    from codegen.errors import CodegenError, Exit

    with pytest.raises(CodegenError) as error:
        codegen.convert(tmp_path / "missing.meta", tmp_path / "out")
    assert error.value.exit_code == Exit.INPUT and "missing.meta" in error.value.message
    with pytest.raises(CodegenError) as error:
        codegen.build(tmp_path / "no_ir", tmp_path / "out")
    assert error.value.exit_code == Exit.INVALID_IR
    assert not (tmp_path / "out").exists()
