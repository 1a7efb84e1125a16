"""Shared fixtures: small TF-slim nets with calibrated random weights, built once per run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TINY_CLASSES = 5

# Test modules that run without TensorFlow (`pip install -e '.[test]'`, then
# `python -m pytest -m 'not tf'`): the passes, naming, templates and CLI on IR the tests write
# themselves. Every other module is marked `tf`.
TF_FREE = {"test_catalog.py", "test_ir_ops.py", "test_ir_conv_ops.py", "test_ir_sequence_ops.py",
           "test_support.py", "test_no_pickle.py", "test_pth.py", "test_architecture.py",
           "test_bias_add.py", "test_build_check.py", "test_forward_keywords.py"}


def _has_tensorflow() -> bool:
    # (looked up, not imported: importing it here would print TF's C++ start-up lines in
    # every test worker; the tests import it through codegen's quiet import_tf)
    return importlib.util.find_spec("tensorflow") is not None


def pytest_ignore_collect(collection_path, config) -> bool | None:
    """Without TensorFlow, modules that import it are not collected (their tests are `tf`)."""
    name = collection_path.name
    if name.startswith("test_") and name not in TF_FREE and not _has_tensorflow():
        return True
    return None


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.path.name not in TF_FREE:
            item.add_marker(pytest.mark.tf)


def tiny_resnet_v2(x, is_training):
    """A 2-block ResNet V2 with every feature of the big one: projection, identity and
    strided units, the root 7x7/2 conv with explicit pad, a SAME 3x3/2 max pool."""
    from codegen.frontends.tensorflow.compat import import_slim

    slim = import_slim()
    from tf_slim.nets import resnet_v2

    blocks = [
        resnet_v2.resnet_v2_block("block1", base_depth=4, num_units=2, stride=2),
        resnet_v2.resnet_v2_block("block2", base_depth=8, num_units=3, stride=1),
    ]
    with slim.arg_scope(resnet_v2.resnet_arg_scope()):
        net, _ = resnet_v2.resnet_v2(x, blocks, num_classes=TINY_CLASSES,
                                     is_training=is_training, scope="resnet_v2_tiny")
    return net


def codegen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the command line as a user would."""
    return subprocess.run([sys.executable, "-m", "codegen.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """imagenet-style checkpoint of the tiny ResNet V2 at 33x33 (odd: SAME pads both sides)."""
    from codegen.zoo.slim import write_checkpoint

    prefix = tmp_path_factory.mktemp("tiny") / "tiny.ckpt"
    return write_checkpoint(tiny_resnet_v2, prefix, image_size=33, seed=1)


@pytest.fixture(scope="session")
def tiny_build(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint through to-ir and build; returns the folder holding ir/ and model/."""
    root = tmp_path_factory.mktemp("tiny_out")
    result = codegen("to-ir", f"{tiny_checkpoint}.meta", "--dst-node", "output", "-o", root / "ir")
    assert result.returncode == 0, result.stderr
    result = codegen("build", root / "ir", "-o", root / "model")
    assert result.returncode == 0, result.stderr
    return root


def run_tf(prefix: Path, images: np.ndarray, output: str = "output") -> np.ndarray:
    from codegen.verify import TFRunner

    return TFRunner(Path(f"{prefix}.meta"), prefix).run([output], {"input": images})[0]


def load_generated(model_dir: Path):
    from codegen.verify import import_generated

    return import_generated(model_dir)


def copy_with_scaled_channel(model_dir: Path, target: Path, key: str, channel: int,
                             factor: float) -> Path:
    """A copy of a generated model folder with one output channel of weight `key` scaled:
    a wrong weight that a check must find."""
    import shutil

    shutil.copytree(model_dir, target)
    kernel = np.load(target / "weights" / f"{key}.npy")
    kernel[channel] *= factor
    np.save(target / "weights" / f"{key}.npy", kernel)
    return target


def tf1_dense(tf, x, units: int, name: str, seed: int):
    """x @ kernel + bias in TF1 variable scope `name` (reused where the scope reuses), with
    seeded normal initial values: the dense layer of the hand-written TF1 graphs."""
    v1 = tf.compat.v1
    with v1.variable_scope(name):
        w = v1.get_variable("kernel", [x.shape[-1], units],
                            initializer=v1.random_normal_initializer(0, 0.4, seed=seed))
        b = v1.get_variable("bias", [units],
                            initializer=v1.random_normal_initializer(0, 0.3, seed=seed + 1))
    return tf.matmul(x, w) + b


def small_convnext(depths: list[int], seed: int, name: str):
    """A small ConvNeXt from Keras applications' own constructor (widths 8-32, 64x64; a
    ConvNeXt of unknown image size is refused: its Tensordot shapes are computed at run
    time), its layer scales spread off their 1e-6 start so that a lost one shows."""
    from codegen.frontends.tensorflow.compat import import_tf

    import_tf()
    import keras
    from keras.src.applications.convnext import ConvNeXt

    keras.utils.set_random_seed(seed)
    model = ConvNeXt(depths=depths, projection_dims=[8, 16, 24, 32], weights=None,
                     input_shape=(64, 64, 3), include_top=False, pooling="avg", name=name)
    rng = np.random.default_rng(seed)
    for variable in model.trainable_weights:
        if "layer_scale" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    return model


def trainable_count(keras_model) -> int:
    """A Keras model's trainable values, a shared variable once."""
    unique = {id(variable): variable for variable in keras_model.trainable_weights}
    return sum(int(np.prod(variable.shape)) for variable in unique.values())


def assert_param_count(model_dir: Path, expected: int) -> None:
    """The generated model (build_model(): unfused, each BatchNorm keeps its scale and
    offset) has exactly `expected` trainable parameter values, a shared one once."""
    from codegen.verify.params import trainable_parameters

    model = load_generated(model_dir).build_model()
    assert trainable_parameters(model) == expected, (trainable_parameters(model), expected)


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def check_export_and_compile(model, x) -> None:
    """The model gives the same output under torch.export.export and under
    torch.compile(fullgraph=True) (aot_eager backend: Dynamo's full graph capture and
    AOTAutograd, without Inductor's minutes of C++ compilation)."""
    import torch

    with torch.no_grad():
        expected = model(x)
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), expected, rtol=1e-4, atol=1e-5)
        torch._dynamo.reset()
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x), expected, rtol=1e-4, atol=1e-5)


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """The CLI failed as a user should see it: the exit code, one error line, no traceback."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("codegen: error: ")
    for needle in needles:
        assert needle in result.stderr
