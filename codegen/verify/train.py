"""`codegen verify --train`: one training-mode batch, Keras against the generated model.

Fine-tuning runs the model in training mode: BatchNorm normalises with the batch's own
statistics and moves its running statistics towards them. We run the Keras model with
`training=True` and the generated model after `.train()` on the same batch, compare the
outputs, then each BatchNorm's moving statistics after that step with PyTorch's
`running_mean` / `running_var`. Dropout is random on both sides: it is switched off
(Keras rate 0, PyTorch p 0) and the output says so.

Two conventions differ and are accounted for, not hidden: Keras momentum m is PyTorch
momentum 1 - m, and PyTorch moves `running_var` towards the UNBIASED batch variance
(times n / (n - 1), n = values per channel) where Keras uses the biased one. The variance
is compared with the Keras value corrected by that factor; the uncorrected figure is
reported beside it. Besides the statistic itself (`state rel`, max |ours - Keras| /
max |Keras|), we compare the step it took relative to the batch statistic it moved towards
(`step rel`, max |ours - Keras| / max |Keras new - m * old|): with a momentum of 0.01 a
missed or mis-weighted step is a hundredth of the statistic, but all of the batch part.

Only a Keras file has a training mode: a SavedModel or a TF1 graph holds the inference
function alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen.errors import InputError
from codegen.verify import (
    _as_list,
    _relative,
    import_generated,
    load_weights,
    random_inputs,
    read_io,
    torch_inputs,
)
from codegen.verify.param_map import ParamSource, keras_variable_keys, read_index

DROPOUT_ATTRIBUTES = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate",
                      "SpatialDropout3D": "rate", "GaussianDropout": "rate",
                      "AlphaDropout": "rate", "GaussianNoise": "stddev"}


@dataclass
class StatRow:
    layer: str  # Keras layer name
    key: str  # PyTorch buffer
    values_per_channel: int  # n
    state_rel: float  # max |ours - Keras| / max |Keras| after the step
    step_rel: float  # max |ours - Keras| / max |Keras new - m * old| (the batch part)
    uncorrected_step_rel: float | None = None  # variance: against Keras' biased value
    step_f64: tuple[float, float] | None = None  # step rel of (Keras, ours) against float64
    momentum: tuple[float, float] = (0.0, 0.0)  # (expected 1 - Keras momentum, PyTorch's)


@dataclass
class OutputRow:
    output: str
    rel: float  # max |ours - Keras| / max |Keras|, both in training mode
    tf_vs_f64: float | None = None  # Keras against our float64 run
    ours_vs_f64: float | None = None


@dataclass
class TrainReport:
    outputs: list[OutputRow]
    stats: list[StatRow]
    notes: list[str] = field(default_factory=list)

    def failures(self, tolerance: float) -> list[str]:
        bad = [f"output {row.output}: {row.rel:.3g}" + _f64_text(row.tf_vs_f64, row.ours_vs_f64)
               for row in self.outputs if row.rel > tolerance]
        bad += [f"{row.key}: step {row.step_rel:.3g}, state {row.state_rel:.3g}"
                + (_momentum_text(row) or _f64_text(*(row.step_f64 or (None, None))))
                for row in self.stats if max(row.step_rel, row.state_rel) > tolerance]
        return bad


def require_keras_file(model_path: Path) -> None:
    from codegen.frontends.tensorflow.saved import is_keras_file

    if not is_keras_file(Path(model_path)):
        raise InputError(f"{model_path}: --train needs the Keras file (.keras or .h5): a "
                         "SavedModel, frozen graph or checkpoint holds only the inference "
                         "function, not the layers' training mode")


def load_keras(model_path: Path):
    """The Keras model of a .keras/.h5 file; a clear error for every other source."""
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.frontends.tensorflow.saved import first_line

    require_keras_file(model_path)
    import_tf()
    import keras

    try:
        return keras.saving.load_model(str(model_path), compile=False)
    except Exception as exc:  # noqa: BLE001 - corrupt zip/HDF5, unknown layers, ...
        raise InputError(f"{model_path}: not a loadable Keras model ({first_line(exc)})") from None


def switch_off_dropout(keras_model, torch_model) -> list[str]:
    """Dropout rate 0 on both sides (it is random); what was switched off, for the output."""
    from torch import nn

    keras_found, torch_found = [], []
    for layer in keras_model._flatten_layers():
        attribute = DROPOUT_ATTRIBUTES.get(type(layer).__name__)
        if attribute and getattr(layer, attribute, 0):
            keras_found.append(f"Keras {layer.name} ({attribute} {getattr(layer, attribute):g})")
            setattr(layer, attribute, 0.0)
    for name, module in torch_model.named_modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p:
            torch_found.append(f"PyTorch {name} (p {module.p:g})")
            module.p = 0.0
    if not keras_found + torch_found:
        return ["dropout: none in either model"]
    notes = [f"dropout switched off for the comparison: {', '.join(keras_found + torch_found)}"]
    if keras_found and not torch_found:
        notes.append("the generated model has no dropout (the inference graph it comes from "
                     "has none): fine-tuning it runs without; add nn.Dropout by hand to train "
                     "as Keras does")
    return notes


def batch_norm_keys(keras_model, entries: list[ParamSource]) -> tuple[list, str]:
    """[(Keras BatchNormalization layer, PyTorch mean key, variance key)], and how the
    variables were matched; InputError when a statistic has no key."""
    import keras

    norms = [layer for layer in keras_model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    mapping, how = keras_variable_keys(entries, keras_model.variables)
    pairs, missing = [], []
    for layer in norms:
        keys = [mapping.get(v.path) for v in (layer.moving_mean, layer.moving_variance)]
        missing += [v.path for v, k in zip((layer.moving_mean, layer.moving_variance), keys)
                    if k is None]
        pairs.append((layer, *keys))
    if missing:
        raise InputError(f"no PyTorch buffer found for the Keras variables {', '.join(missing)} "
                         f"(matched by {how}); rebuild with a codegen that writes 'source' into "
                         "weights/index.json")
    return pairs, how


def verify_train(model_path: Path, out_dir: Path, *, batch: int = 4, seed: int = 0,
                 float64: bool = True) -> TrainReport:
    """One training-mode batch on both sides; with `float64`, the generated model also runs
    in double precision: batch statistics over few values (n = 4 at the end of a small
    MobileNetV2) leave both float32 runs ~1e-4 from it, which is round-off, not a bug."""

    out_dir = Path(out_dir)
    io, entries = read_io(out_dir), read_index(out_dir)
    keras_model = load_keras(model_path)
    module = import_generated(out_dir)
    model = load_weights(module, out_dir / "weights", fused=False)
    notes = switch_off_dropout(keras_model, model)
    pairs, how = batch_norm_keys(keras_model, entries)
    notes.append(f"BatchNorm statistics matched to Keras variables by {how}")
    feeds = random_inputs(io, batch, seed)
    old = {layer.name: (_value(layer.moving_mean), _value(layer.moving_variance))
           for layer, _, _ in pairs}
    expected = [np.asarray(out) for out in
                _as_list(keras_model(keras_inputs(keras_model, io, feeds), training=True))]
    inputs = torch_inputs(io, feeds)
    ours, buffers, counts = _train_step(model, pairs, inputs)
    exact = None
    if float64:
        model64 = load_weights(module, out_dir / "weights", fused=False).double()
        switch_off_dropout(keras_model, model64)
        exact = _train_step(model64, pairs, [t.double() for t in inputs])
    report = TrainReport([], [], notes)
    for index, (spec, keras_out) in enumerate(zip(io["outputs"], expected)):
        row = OutputRow(spec["tf_name"], _relative(ours[index], keras_out, keras_out))
        if exact is not None:
            reference = exact[0][index]
            row.tf_vs_f64 = _relative(keras_out, reference, reference)
            row.ours_vs_f64 = _relative(ours[index], reference, reference)
        report.outputs.append(row)
    for layer, mean_key, var_key in pairs:
        n = counts.get(layer.name, 0)
        momentum = (round(1.0 - float(layer.momentum), 10),
                    float(model.get_submodule(mean_key.rpartition(".")[0]).momentum or 0.0))
        old_mean, old_var = old[layer.name]
        m = float(layer.momentum)
        new_mean, new_var = _value(layer.moving_mean), _value(layer.moving_variance)
        corrected = new_var + (new_var.astype(np.float64) - m * old_var) / max(n - 1, 1)
        for key, before, keras_new in ((mean_key, old_mean, new_mean),
                                       (var_key, old_var, corrected)):
            row = _stat_row(layer.name, key, n, buffers[key], m * before, keras_new)
            row.momentum = momentum
            if key == var_key:
                row.uncorrected_step_rel = _stat_row(layer.name, key, n, buffers[key],
                                                     m * before, new_var).step_rel
            if exact is not None:
                reference = exact[1][key]
                row.step_f64 = (_step_rel(keras_new, reference, m * before),
                                _step_rel(buffers[key], reference, m * before))
            report.stats.append(row)
    return report


def _train_step(model, pairs: list, inputs: list) -> tuple[list, dict, dict]:
    """The outputs of one training-mode batch, the buffers after it, and the number of
    values per channel each BatchNorm saw (batch x spatial size)."""
    import torch

    counts, hooks = {}, []

    def count(name):
        def hook(module, args) -> None:
            counts.setdefault(name, args[0].numel() // max(1, module.num_features))
        return hook

    for layer, mean_key, _ in pairs:
        module = model.get_submodule(mean_key.rpartition(".")[0])
        hooks.append(module.register_forward_pre_hook(count(layer.name)))
    model.train()
    try:
        with torch.no_grad():
            outputs = [out.numpy() for out in _as_list(model(*inputs))]
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, {k: v.numpy() for k, v in model.named_buffers()}, counts


def keras_inputs(keras_model, io: dict, feeds: dict):
    """The feeds in the structure the Keras model was built with (a functional model read
    from an .h5 file takes a list even for one input, and warns when given a bare array)."""
    arrays = [feeds[spec["tf_name"]] for spec in io["inputs"]]
    if len(arrays) > 1 or isinstance(getattr(keras_model, "input", None), list):
        return arrays
    return arrays[0]


def _stat_row(layer: str, key: str, n: int, ours: np.ndarray, kept: np.ndarray,
              after: np.ndarray) -> StatRow:
    """`kept`: m * the statistic before the step; `after` - `kept` is the batch part."""
    return StatRow(layer, key, n, _relative(ours, after, after), _step_rel(ours, after, kept))


def _step_rel(ours: np.ndarray, reference: np.ndarray, kept: np.ndarray) -> float:
    """max |ours - reference| / max |reference - kept|: relative to the batch part."""
    diff = np.abs(ours.astype(np.float64) - reference).max(initial=0.0)
    part = np.abs(np.asarray(reference, np.float64) - kept).max(initial=0.0)
    return float(diff / max(part, 1e-30))


def _f64_text(tf_vs_f64: float | None, ours_vs_f64: float | None) -> str:
    if tf_vs_f64 is None:
        return ""
    return f" (from float64: Keras {tf_vs_f64:.3g}, ours {ours_vs_f64:.3g})"


def _momentum_text(row: StatRow) -> str:
    expected, ours = row.momentum
    if abs(expected - ours) <= 1e-9:
        return ""
    return (f" (PyTorch momentum {ours:g}, Keras momentum {1 - expected:g} means {expected:g}; "
            "convert with --bn-decay or set it in model.py)")


def print_train_report(report: TrainReport, tolerance: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if Console().is_terminal else 200)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for row in report.outputs:
        console.print(f"training-mode output {row.output}: max|PyTorch - Keras| / max|Keras| = "
                      f"{row.rel:.3g}" + _f64_text(row.tf_vs_f64, row.ours_vs_f64),
                      highlight=False)
    table = Table(title="BatchNorm statistics after one training step (step rel = "
                        "max|ours - Keras| / max|Keras new - momentum * old|)")
    float64 = any(row.step_f64 for row in report.stats)
    columns = ["Keras layer", "PyTorch buffer", "n", "momentum", "state rel", "step rel",
               "biased-var step rel"] + (["step: Keras vs f64", "ours vs f64"] if float64 else [])
    for column in columns:
        table.add_column(column, justify="left" if column[0].isupper() else "right")
    for row in report.stats:
        bad = max(row.step_rel, row.state_rel) > tolerance
        expected, ours = row.momentum
        raw = "" if row.uncorrected_step_rel is None else f"{row.uncorrected_step_rel:.3g}"
        momentum = f"{ours:g}" + ("" if abs(expected - ours) <= 1e-9 else f" (expected {expected:g})")
        cells = [row.layer, row.key, str(row.values_per_channel), momentum,
                 f"{row.state_rel:.3g}", f"{row.step_rel:.3g}", raw]
        if float64:
            cells += [f"{value:.3g}" for value in row.step_f64 or ()]
        table.add_row(*cells, style="bold red" if bad else None)
    console.print(table)
    console.print("running_var: PyTorch moves it towards the unbiased batch variance (x n/(n-1)), "
                  "Keras towards the biased one; 'step rel' compares with the Keras value "
                  "corrected by that factor, 'biased-var step rel' with Keras' own value.",
                  highlight=False, soft_wrap=True)


def _value(variable) -> np.ndarray:
    """A Keras variable's value as a numpy array (np.array(variable) warns under NumPy 2:
    Keras' __array__ takes no copy argument)."""
    return np.array(variable.numpy())
