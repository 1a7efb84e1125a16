"""`codegen verify --per-layer`: compare every layer's output with its TF tensor.

`codegen build` writes OUT_DIR/.codegen/layers.json: each layer module of the generated
model (`block3.16.conv2.conv`), the IR node it computes and the TF tensor holding the
same values (a conv that absorbed its BiasAdd is compared with `.../BiasAdd:0`). We run
TF once fetching all of them, and the generated model once with forward hooks on those
modules; rank-4 TF tensors are transposed NHWC -> NCHW.

A layer is flagged where the error *jumps*: its relative error is above the tolerance
and JUMP times larger than the largest one before it. Round-off grows slowly through a
deep net and is never flagged; one wrong weight shows up as a jump at its layer.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from codegen.errors import InputError
from codegen.progress import progress_bar
from codegen.verify import (
    TFRunner,
    _as_list,
    _to_nchw,
    exact_attention,
    import_generated,
    load_weights,
    random_inputs,
    torch_inputs,
)

JUMP = 10.0


@dataclass
class LayerRow:
    tf_tensor: str
    module: str
    shape: list[int]
    max_abs: float  # max |ours - tf|
    rel: float  # max |ours - tf| / max |tf|
    tf_vs_f64: float | None = None  # max |tf - ours64| / max |ours64|
    ours_vs_f64: float | None = None
    jump: bool = False


@dataclass
class LayerReport:
    rows: list[LayerRow]
    skipped: list[str]  # modules whose TF tensor is not in the TF graph
    first_jump: LayerRow | None
    worst: LayerRow | None

    def to_json(self) -> dict:
        return {"rows": [asdict(row) for row in self.rows], "skipped": self.skipped,
                "first_jump": asdict(self.first_jump) if self.first_jump else None,
                "worst": asdict(self.worst) if self.worst else None}


def read_layers(out_dir: Path) -> tuple[dict, list[dict]]:
    state = Path(out_dir) / ".codegen"
    if not (state / "layers.json").is_file():
        raise InputError(f"{state / 'layers.json'}: missing; rebuild with 'codegen build' to "
                         "record which module computes which TF tensor")
    return (json.loads((state / "io.json").read_text()),
            json.loads((state / "layers.json").read_text()))


def verify_layers(model_path: Path, weights: Path | None, out_dir: Path, *, batch: int = 2,
                  seed: int = 0, float64: bool = False, tolerance: float = 1e-4,
                  runner: TFRunner | None = None, quiet: bool = False) -> LayerReport:
    import torch

    io, layers = read_layers(out_dir)
    runner = runner or TFRunner(Path(model_path), weights)
    known = {op.name for op in runner.graph.get_operations()}
    skipped = [layer["module"] for layer in layers
               if layer["tf_tensor"].rpartition(":")[0] not in known]
    layers = [layer for layer in layers if layer["module"] not in skipped]
    outputs = [{"module": "(output)", "tf_tensor": f"{spec['tf_name']}:0",
                "nchw": bool(spec.get("nchw"))} for spec in io["outputs"]]
    feeds = random_inputs(io, batch, seed)
    model = load_weights(import_generated(out_dir), Path(out_dir) / "weights", fused=False)
    inputs = torch_inputs(io, feeds)
    steps = ["TensorFlow", "PyTorch float32"] + (["PyTorch float64"] if float64 else [])
    results = {}
    for step in progress_bar(steps, "per-layer verify", quiet=quiet):
        if step == "TensorFlow":
            tensors = [row["tf_tensor"] for row in layers + outputs]
            fetched = runner.session.run(tensors, runner.feed_dict(tensors, feeds))
            results[step] = [_to_nchw(_squeezed(a, row), row["nchw"])
                             for a, row in zip(fetched, layers + outputs)]
            results[step] = [a[:, row["channels"]] if "channels" in row else a  # our order
                             for a, row in zip(results[step], layers + outputs)]
        else:
            dtype = torch.float64 if step.endswith("64") else torch.float32
            with exact_attention() if dtype == torch.float64 else nullcontext():
                results[step] = _run_hooked(
                    model.to(dtype), [layer["module"] for layer in layers],
                    [t.to(dtype) if t.is_floating_point() else t for t in inputs])  # (not ids)
    model.float()
    rows = []
    for index, layer in enumerate(layers + outputs):
        tf_value, ours = results["TensorFlow"][index], results["PyTorch float32"][index]
        row = LayerRow(layer["tf_tensor"], layer["module"], list(ours.shape), *_errors(ours, tf_value))
        if float64:
            exact = results["PyTorch float64"][index]
            row.tf_vs_f64 = _errors(tf_value, exact)[1]
            row.ours_vs_f64 = _errors(ours, exact)[1]
        rows.append(row)
    first_jump = mark_jumps(rows, tolerance)
    worst = max(rows, key=lambda row: row.rel, default=None)
    return LayerReport(rows, skipped, first_jump, worst)


def _run_hooked(model, modules: list[str], inputs: list) -> list[np.ndarray]:
    """Model outputs after the outputs of `modules`, in that order."""
    import torch

    captured: dict[str, np.ndarray] = {}
    handles = []
    for path in modules:
        def hook(_module, _args, output, path=path):
            captured.setdefault(path, output.detach().numpy().copy())
        handles.append(model.get_submodule(path).register_forward_hook(hook))
    try:
        with torch.no_grad():
            final = [t.numpy() for t in _as_list(model(*inputs))]
    finally:
        for handle in handles:
            handle.remove()
    return [captured[path] for path in modules] + final


def _errors(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    if ours.shape != reference.shape:
        return float("inf"), float("inf")
    diff = float(np.abs(ours.astype(np.float64) - reference).max(initial=0.0))
    return diff, diff / max(float(np.abs(reference).max(initial=0.0)), 1e-30)


def mark_jumps(rows: list[LayerRow], tolerance: float) -> LayerRow | None:
    """Flag rows whose error jumps; returns the first."""
    seen, first = 0.0, None
    for row in rows:
        if row.rel > tolerance and row.rel > JUMP * seen:
            row.jump = True
            first = first or row
        seen = max(seen, row.rel)
    return first


def print_layers(report: LayerReport, *, float64: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if Console().is_terminal else 220)
    table = Table(title="per-layer comparison (relative = max|ours - TF| / max|TF|)")
    for column in ("TF tensor", "PyTorch module", "shape", "max abs err", "max rel err"):
        table.add_column(column, overflow="fold",
                         justify="right" if column.startswith("max") else "left")
    if float64:
        table.add_column("TF vs f64", justify="right")
        table.add_column("ours vs f64", justify="right")
    for row in report.rows:
        cells = [row.tf_tensor, row.module, "×".join(map(str, row.shape)), f"{row.max_abs:.3g}",
                 f"{row.rel:.3g}" + ("  ◀ jump" if row.jump else "")]
        if float64:
            cells += [f"{row.tf_vs_f64:.3g}", f"{row.ours_vs_f64:.3g}"]
        table.add_row(*cells, style="bold red" if row.jump else None)
    console.print(table)
    console.print(summary_line(report, float64=float64), highlight=False)


def summary_line(report: LayerReport, *, float64: bool = False) -> str:
    rows = report.rows
    text = f"per-layer: {len(rows)} tensors compared"
    if report.skipped:
        text += f" ({len(report.skipped)} layers without a TF tensor skipped)"
    if report.worst is not None:
        text += f"; worst {report.worst.rel:.3g} at {report.worst.module}"
    jump = report.first_jump
    if jump is not None:
        text += (f"; first jump at {jump.module} (TF {jump.tf_tensor}): {jump.rel:.3g}, "
                 f"start looking there")
    else:
        text += "; no jump: the error grows smoothly (round-off)"
    if float64 and rows:
        last = rows[-1]
        text += (f"; at the output TF float32 is {last.tf_vs_f64:.3g} and ours "
                 f"{last.ours_vs_f64:.3g} from float64")
    return text


def _squeezed(array: np.ndarray, row: dict) -> np.ndarray:
    """A 1-D layer inside a run TF writes on [N, 1, T, C] (SeparableConv1D's depthwise half)
    holds the values of our [N, C, T]: drop the 1."""
    shape = row.get("shape")
    if shape is not None and array.ndim == len(shape) + 1 and array.shape[1] == 1:
        return array[:, 0]
    return array
