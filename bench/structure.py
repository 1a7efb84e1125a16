"""How readable the generated code is on Keras applications whose layer names do not split
into stage/block scopes (issue 22): lines of model.py, the longest `forward`, the number of
classes, and the largest difference from TensorFlow.

    python bench/structure.py [--work DIR] [MODEL ...]

Models (random weights, calibrated BatchNorm, built offline and saved as SavedModels in
DIR/sources, reused on later runs): RegNetX002 (tf_keras), MobileNetV3Small, ConvNeXtTiny,
NASNetMobile. The budgets are the issue's.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

# name -> (line budget, forward budget)
BUDGETS = {"RegNetX002": (250, 60), "MobileNetV3Small": (250, 60), "ConvNeXtTiny": (200, 60),
           "NASNetMobile": (600, 100)}
SIZE = 224


def code_size(model_py: Path) -> dict:
    """Lines of model.py, the longest forward (lines) and the number of classes."""
    text = model_py.read_text()
    tree = ast.parse(text)
    forwards = [node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name == "forward"]
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    return {"lines": len(text.splitlines()), "longest_forward": max(forwards, default=0),
            "classes": len(classes)}


def save_source(name: str, folder: Path) -> Path:
    """The SavedModel of `name` (built once, random weights with calibrated statistics)."""
    path = folder / name
    if (path / "saved_model.pb").exists():
        return path
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    if name == "RegNetX002":
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        model = tf_keras.applications.regnet.RegNetX002(
            weights=None, input_shape=(SIZE, SIZE, 3), classes=1000, classifier_activation=None)
        _calibrate(model, tf_keras.layers.BatchNormalization)
        tf.saved_model.save(model, str(path))
    else:
        from codegen.zoo.keras_apps import build_keras_model, save_keras_model

        model = build_keras_model(name, image_size=SIZE)
        save_keras_model(model, folder, name, formats=("savedmodel",))
    return path


def _calibrate(model, batch_norm_class) -> None:
    rng = np.random.default_rng(0)
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, batch_norm_class)]
    for layer in layers:
        channels = layer.moving_mean.shape[-1]
        layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
        layer.beta.assign(rng.uniform(-0.2, 0.2, channels).astype("float32"))
        layer.momentum = 0.0
    model(rng.uniform(-1, 1, (8, SIZE, SIZE, 3)).astype("float32"), training=True)
    for layer in layers:
        layer.momentum = 0.99


def tf_output(source: Path, images: np.ndarray) -> np.ndarray:
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    loaded = tf.saved_model.load(str(source))
    function = loaded.signatures["serving_default"]
    result = function(tf.constant(images))
    return next(iter(result.values())).numpy()


def measure(name: str, work: Path) -> dict:
    import torch

    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    source = save_source(name, work / "sources")
    out = Path(tempfile.mkdtemp(prefix=f"structure_{name}_", dir=work))
    to_ir(source, None, None, out / "ir", quiet=True)
    build(out / "ir", out / "model", quiet=True)
    result = {"model": name, **code_size(out / "model" / "model.py"), "out": str(out)}
    images = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    expected = tf_output(source, images)
    model = import_generated(out / "model").load_model()
    with torch.no_grad():
        ours = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    result["max_abs_over_max_ref"] = float(np.abs(ours - expected).max() / np.abs(expected).max())
    lines, forward = BUDGETS[name]
    result["within_budget"] = result["lines"] <= lines and result["longest_forward"] <= forward
    # same IR -> byte-identical files
    build(out / "ir", out / "again", quiet=True)
    result["deterministic"] = ((out / "model" / "model.py").read_bytes()
                               == (out / "again" / "model.py").read_bytes())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(BUDGETS))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_structure")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        print(json.dumps(measure(name, args.work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
