"""codegen build again: deterministic, fast on unchanged weights, never loses an edit."""

from __future__ import annotations

import shutil

from conftest import codegen


def fresh_copy(tiny_build, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_build / "model", target)
    return target


def test_same_ir_gives_byte_identical_output(tiny_build, tmp_path):
    result = codegen("build", tiny_build / "ir", "-o", tmp_path / "again")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "again" / "model.py").read_bytes() == (tiny_build / "model" / "model.py").read_bytes()


def test_rebuild_keeps_unchanged_weights(tiny_build, tmp_path):
    target = fresh_copy(tiny_build, tmp_path)
    result = codegen("build", tiny_build / "ir", "-o", target)
    assert result.returncode == 0, result.stderr
    assert " 0 written" in result.stderr


def test_clean_merge_keeps_hand_edits(tiny_build, tmp_path):
    target = fresh_copy(tiny_build, tmp_path)
    model = target / "model.py"
    edited = model.read_text().replace(
        '"""The network with random weights, in training mode."""',
        '"""The network with random weights, in training mode."""\n    # my note: fine-tune from here',
    )
    model.write_text(edited)
    templates = tmp_path / "templates"
    assert codegen("templates", "export", templates).returncode == 0
    activation = templates / "ops" / "activation.py.jinja"
    activation.write_text(activation.read_text().replace(  # relu as torch.relu, the rest as before
        "{{ a.form }}(", "{{ 'torch.relu' if a.kind == 'relu' else a.form }}(").replace(
        "a.inplace is defined", "a.inplace is defined and a.kind != 'relu'"))  # (no inplace=)
    result = codegen("build", tiny_build / "ir", "-o", target, "--templates", templates)
    assert result.returncode == 0, result.stderr
    text = model.read_text()
    assert "# my note: fine-tune from here" in text  # the edit survived
    assert "torch.relu(" in text and "F.relu(" not in text  # the template change landed
    assert "merged" in result.stderr


def test_conflict_leaves_model_untouched(tiny_build, tmp_path):
    target = fresh_copy(tiny_build, tmp_path)
    model = target / "model.py"
    edited = model.read_text().replace("F.relu(", "F.gelu(", 1)
    model.write_text(edited)
    templates = tmp_path / "templates"
    codegen("templates", "export", templates)
    activation = templates / "ops" / "activation.py.jinja"
    activation.write_text(activation.read_text().replace(  # relu as torch.relu, the rest as before
        "{{ a.form }}(", "{{ 'torch.relu' if a.kind == 'relu' else a.form }}(").replace(
        "a.inplace is defined", "a.inplace is defined and a.kind != 'relu'"))  # (no inplace=)
    result = codegen("build", tiny_build / "ir", "-o", target, "--templates", templates)
    assert result.returncode == 7, result.stderr
    assert model.read_text() == edited
    assert "<<<<<<<" in (target / "model.py.merge").read_text()
    assert "model.py.merge" in result.stderr and "Traceback" not in result.stderr
    forced = codegen("build", tiny_build / "ir", "-o", target, "--templates", templates, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target / "model.py.bak").read_text() == edited
    assert "torch.relu(" in model.read_text()


def test_generated_code_passes_black_and_pyflakes(tiny_build):
    import subprocess
    import sys

    import black

    source = (tiny_build / "model" / "model.py").read_text()
    assert black.format_str(source, mode=black.Mode()) == source
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F",
                             str(tiny_build / "model" / "model.py")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_generated_code_matches_golden_file(tiny_build):
    from golden import check_golden

    check_golden("resnet_v2_tiny", tiny_build / "model" / "model.py")
