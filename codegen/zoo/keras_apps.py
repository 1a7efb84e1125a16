"""Keras applications with deterministic random weights, saved as `.keras` and SavedModel.

`keras.applications.*(weights=None)` builds offline, but its BatchNorm layers start with
mean 0 / variance 1, so deep nets produce vanishing or exploding activations. We calibrate
them as `calibrate.py` does for TF-slim: random scales and offsets, then one forward pass in
training mode with momentum 0, which sets every moving statistic to the batch statistics
the layer actually sees. The result behaves like a trained net numerically (activations of
order 1), which is what a conversion test needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codegen.errors import UsageError
from codegen.frontends.tensorflow.compat import import_tf


@dataclass(frozen=True)
class KerasEntry:
    name: str  # keras.applications attribute
    image_size: int  # the default used by `codegen extract`; any size the net accepts works
    options: tuple[tuple[str, Any], ...] = ()


KERAS_ZOO: dict[str, KerasEntry] = {
    entry.name: entry
    for entry in (
        KerasEntry("ResNet50V2", 224),
        KerasEntry("ResNet152V2", 224),
        KerasEntry("MobileNetV2", 224),
        KerasEntry("MobileNetV3Small", 224),
        KerasEntry("EfficientNetB0", 224),
        KerasEntry("DenseNet121", 224),
        KerasEntry("InceptionV3", 299),
        KerasEntry("NASNetMobile", 224),
        KerasEntry("ConvNeXtTiny", 224),
    )
}


def build_keras_model(name: str, *, image_size: int | None = None, seed: int = 0,
                      classes: int = 1000, calibrate: bool = True) -> Any:
    """The Keras application `name` with random weights (calibrated BatchNorm statistics)."""
    import_tf()
    import keras

    entry = KERAS_ZOO.get(name)
    if entry is None:
        raise UsageError(f"unknown Keras application {name!r}; known: {', '.join(KERAS_ZOO)}")
    size = image_size or entry.image_size
    keras.utils.set_random_seed(seed)
    constructor = getattr(keras.applications, name)
    model = constructor(weights=None, input_shape=(size, size, 3), classes=classes,
                        classifier_activation=None, **dict(entry.options))
    if calibrate:
        calibrate_batch_norm(model, size, seed)
    return model


def calibrate_batch_norm(model: Any, size: int, seed: int) -> None:
    """Random BN scales/offsets, then moving statistics from one training-mode pass."""
    import keras

    rng = np.random.default_rng(seed)
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        channels = layer.moving_mean.shape[-1]
        if layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
        if layer.beta is not None:
            layer.beta.assign(rng.uniform(-0.2, 0.2, channels).astype("float32"))
        layer.momentum = 0.0
    images = rng.uniform(-1, 1, (8, size, size, 3)).astype("float32")
    model(images, training=True)
    for layer in layers:
        layer.momentum = 0.99


def save_keras_model(model: Any, out_dir: Path, name: str, formats=("keras", "savedmodel")) -> dict:
    """Write `name.keras` and/or the SavedModel folder `name/`; return {format: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    if "keras" in formats:
        paths["keras"] = out_dir / f"{name}.keras"
        model.save(paths["keras"])
    if "savedmodel" in formats:
        paths["savedmodel"] = out_dir / name
        model.export(str(paths["savedmodel"]), verbose=False)
    return paths


def save_frozen_graph(model_path: Path, out_file: Path) -> tuple[str, list[str]]:
    """Freeze a SavedModel/Keras file to a GraphDef `.pb`; return (input, outputs) names."""
    from codegen.frontends.tensorflow import saved

    tf = import_tf()
    model_path = Path(model_path)
    frozen = saved.load(tf, model_path)
    Path(out_file).write_bytes(frozen.graph_def.SerializeToString())
    return frozen.inputs[0], frozen.outputs
