"""A TF-slim checkpoint becomes model.py + weights + .pth that match TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import codegen, load_generated, relative_error, run_tf, tiny_resnet_v2


def images(batch: int, size: int = 33, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("batch", [4, 1])
def test_generated_model_matches_tensorflow(tiny_checkpoint, tiny_build, batch):
    model = load_generated(tiny_build / "model").load_model()
    x = images(batch)
    expected = run_tf(tiny_checkpoint, x)
    with torch.no_grad():
        ours = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert ours.shape == expected.shape == (batch, 5)  # batch axis kept for batch 1
    assert np.abs(expected).std() > 0.1  # calibrated weights: a real signal
    assert relative_error(ours, expected) < 1e-5


def test_pth_loads_with_weights_only(tiny_checkpoint, tiny_build, tmp_path):
    result = codegen("dump", tiny_build / "model", "-o", tmp_path / "model.pth")
    assert result.returncode == 0, result.stderr
    module = load_generated(tiny_build / "model")
    model = module.build_model()
    model.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True), strict=True)
    model.eval()
    x = images(2)
    with torch.no_grad():
        ours = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert relative_error(ours, run_tf(tiny_checkpoint, x)) < 1e-5


def test_verify_command_reports_and_passes(tiny_checkpoint, tiny_build):
    result = codegen("verify", f"{tiny_checkpoint}.meta", "--dst-node", "output",
                     tiny_build / "model")
    assert result.returncode == 0, result.stderr
    assert "batch 4" in result.stdout and "batch 1" in result.stdout
    assert "vs float64" in result.stdout


def test_verify_fails_on_a_broken_weight(tiny_checkpoint, tiny_build, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_build / "model", broken)
    key = "block2.1.conv2.batch_norm.running_var.npy"
    variance = np.load(broken / "weights" / key)
    np.save(broken / "weights" / key, variance * 4)
    result = codegen("verify", f"{tiny_checkpoint}.meta", "--dst-node", "output", broken)
    assert result.returncode == 8, result.stdout + result.stderr
    assert "tolerance" in result.stderr


def test_tf_same_padding_details_matter(tiny_checkpoint, tiny_build):
    """The bugs of older converters show up as >= 1e-2: a max pool padded with zeros
    instead of -inf, and SAME padding put on the wrong side."""
    import torch.nn.functional as F

    module = load_generated(tiny_build / "model")
    x = images(2)
    expected = run_tf(tiny_checkpoint, x)
    tensor = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def error_with(pool_forward) -> float:
        model = module.load_model()
        model.pool1.forward = pool_forward
        with torch.no_grad():
            return relative_error(model(tensor).numpy(), expected)

    pool = module.load_model().pool1
    pads = (pool.padding,) * 4 if isinstance(pool, torch.nn.MaxPool2d) else pool.pad
    total = pads[0] + pads[1]
    inf = float("-inf")
    assert error_with(lambda t: F.max_pool2d(F.pad(t, pads, value=inf), 3, 2)) < 1e-5
    # zero padding instead of -inf: wrong wherever a window's real values are all negative
    zero_padded = lambda t: F.max_pool2d(F.pad(t - 10.0, pads), 3, 2) + 10.0
    assert error_with(zero_padded) > 1e-2
    # all the padding on one side (as a converter that ignores TF's rule might do)
    one_side = (0, total, 0, total) if pads[0] != 0 else (total, 0, total, 0)
    assert error_with(lambda t: F.max_pool2d(F.pad(t, one_side, value=inf), 3, 2)) > 1e-2


def test_batch_norm_keeps_tf_epsilon_and_momentum(tiny_build):
    model = load_generated(tiny_build / "model").build_model()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-5 and m.momentum == pytest.approx(0.003) for m in norms)


def test_wrong_epsilon_would_be_caught(tiny_checkpoint, tiny_build):
    model = load_generated(tiny_build / "model").load_model()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-3
    x = images(2)
    with torch.no_grad():
        ours = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert relative_error(ours, run_tf(tiny_checkpoint, x)) > 1e-3


def test_generated_model_trains(tiny_build):
    model = load_generated(tiny_build / "model").load_model(fused=False).train()  # to fine-tune
    x = torch.randn(4, 3, 33, 33)
    before = model.postnorm.running_mean.clone()
    loss = model(x).logsumexp(dim=1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert not torch.equal(before, model.postnorm.running_mean)  # batch statistics used


def test_build_does_not_import_tensorflow(tiny_build, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\nfrom codegen.cli import main\n"
        f"rc = main(['build', {str(tiny_build / 'ir')!r}, '-o', {str(tmp_path / 'm')!r}, '-q'])\n"
        "assert rc == 0, rc\nassert 'tensorflow' not in sys.modules\nprint('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "clean", result.stderr


def test_a_training_graph_converts_to_an_eval_model(tiny_checkpoint, tmp_path):
    """is_training=True: batch norm on batch statistics in TF; the generated model uses the
    moving statistics, i.e. it matches the same weights' inference graph."""
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.zoo.calibrate import build_graph

    tf = import_tf()
    graph, _, _ = build_graph(tiny_resnet_v2, 33, is_training=True)
    training = tmp_path / "train" / "tiny.ckpt"
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        saver = tf.compat.v1.train.Saver()
        saver.restore(session, str(tiny_checkpoint))
        saver.save(session, str(training))
    result = codegen("to-ir", f"{training}.meta", "--dst-node", "output", "-o", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    assert "warning: the graph was built for training" in result.stderr
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    result = codegen("verify", f"{tiny_checkpoint}.meta", tmp_path / "model")  # the eval graph
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: worst relative error" in result.stdout


def test_unknown_spatial_size_works_for_any_size(tiny_checkpoint, tmp_path):
    """An input of [None, None, None, 3]: TF 'SAME' padding is computed for each input's
    actual size, odd sizes (225, 31) included, as TF does."""
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    tf = import_tf()
    graph, prefix = tf.Graph(), tmp_path / "dynamic" / "tiny.ckpt"
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="input")
        tf.squeeze(tiny_resnet_v2(images, False), [1, 2], name="output")
        saver = tf.compat.v1.train.Saver()
        saver.restore(session, str(tiny_checkpoint))
        saver.save(session, str(prefix))
        to_ir(Path(f"{prefix}.meta"), None, ["output"], tmp_path / "ir", quiet=True)
        build(tmp_path / "ir", tmp_path / "model", quiet=True)
        model = import_generated(tmp_path / "model").load_model()
        assert "same_pad(" in (tmp_path / "model" / "model.py").read_text()
        for size in (33, 64, 225, 31):
            batch = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype("float32")
            expected = session.run("output:0", {"input:0": batch})
            with torch.no_grad():
                ours = model(torch.from_numpy(batch.transpose(0, 3, 1, 2))).numpy()
            assert relative_error(ours, expected) < 1e-5, size
