"""`codegen verify --grad`: the gradients fine-tuning starts from, PyTorch against TensorFlow.

For the scalar loss sum over outputs of sum(output * R), R a fixed seeded random array per
output (the same on both sides), we compare d loss / d input for every float input and
d loss / d parameter for every parameter of the generated model. TensorFlow's side is
`tf.gradients` on the graph `verify` runs (checkpoint variables, or the Const nodes of a
frozen graph); PyTorch's is autograd on `load_model()` in eval mode. A TF variable read at
several places gets the sum of its gradients, as it must; the PyTorch side must then hold
it as ONE parameter, else we report it as untied.

Each parameter's value is compared too (PyTorch against the TF value re-laid): a wrong
weight changes every gradient upstream of it, so the value column is what names it.

A deep ReLU net's gradient is not a smooth function of its input: a pre-activation within
round-off of zero flips its ReLU between two float32 runs, and the gradient jumps (ResNet V2
50: TF 1.7e-06 from our float64 gradient in block4, ours 5e-02; our own float64 gradient
moves by 2e-02 when the input moves by 1e-7). So the float64 run is repeated with inputs
moved by KINK_NOISE, and a gradient only fails above max(tolerance, that noise floor).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen.verify import (
    TFRunner,
    _as_list,
    _relative,
    _to_nchw,
    _to_nhwc,
    exact_attention,
    import_generated,
    load_weights,
    random_inputs,
    read_io,
    torch_inputs,
)
from codegen.verify.param_map import layout, read_index, select_parameters, untied

SHOWN = 12  # rows of the table: the worst tensors
# The inputs of the noise-floor run move by this much (relative): about the float32 error a
# deep net's activations carry. Where it flips a ReLU (or a max, a clip) the exact gradient
# jumps, and a float32 run of TF or of ours may sit on either side: differences of that size
# are round-off, whatever the tolerance.
KINK_NOISE = 1e-6


@dataclass
class GradRow:
    name: str  # state_dict key, or "input <name>"
    tf_tensor: str
    shape: list[int]
    grad_rel: float  # max |ours - TF| / max |TF| of the gradient
    value_rel: float | None = None  # the same for the parameter's value (None: an input)
    tf_grad_max: float = 0.0
    tf_vs_f64: float | None = None  # TF's float32 gradient against our float64 one
    ours_vs_f64: float | None = None
    kink: float | None = None  # our float64 gradient, inputs x (1 + 1e-6 noise), against it


@dataclass
class GradReport:
    rows: list[GradRow]  # inputs first, then parameters in index.json order
    outputs: list[tuple[str, float]]  # (TF output, forward relative error)
    not_compared: list[tuple[str, str]]  # (key, why)
    untied: dict[str, list[str]]  # TF tensor -> PyTorch keys
    notes: list[str] = field(default_factory=list)
    noise_floor: float = 0.0  # the largest `kink` figure: what round-off alone can do
    # kept for a following optimizer step (not printed): model, TF values and gradients
    model: object = None
    tf_values: dict = field(default_factory=dict, repr=False)
    tf_grads: dict = field(default_factory=dict, repr=False)

    def failures(self, tolerance: float) -> list[GradRow]:
        return [row for row in self.rows if row.grad_rel > max(tolerance, self.noise_floor)
                or (row.value_rel or 0.0) > tolerance]

    def problems(self, tolerance: float) -> list[str]:
        """One line per reason to fail: untied parameters, the first parameter, the forward."""
        found = [f"untied: one TF variable is {len(keys)} PyTorch parameters ({tensor} -> "
                 f"{', '.join(keys)})" for tensor, keys in self.untied.items()]
        first = self.first_failure(tolerance)
        if first is not None:
            found.append(f"first over the limit in graph order: {describe(first)}")
        return found + [f"forward {name}: {rel:.3g}" for name, rel in self.outputs
                        if rel > tolerance]

    def uncompared_parameters(self) -> list[str]:
        """Trained parameters without a comparison (neither buffers nor tied aliases)."""
        return [key for key, why in self.not_compared
                if not why.startswith(("buffer", "the same parameter"))]

    def first_failure(self, tolerance: float) -> GradRow | None:
        """The first parameter (graph order) over the tolerance, by value, else by gradient."""
        params = [row for row in self.rows if row.value_rel is not None]
        limits = {"value_rel": tolerance, "grad_rel": max(tolerance, self.noise_floor)}
        for attribute, limit in limits.items():
            for row in params:
                if getattr(row, attribute) > limit:
                    return row
        return next(iter(self.failures(tolerance)), None)


def verify_grad(model_path: Path, weights: Path | None, out_dir: Path, *, batch: int = 2,
                seed: int = 0, float64: bool = True,
                runner: TFRunner | None = None) -> GradReport:
    """With `float64`, the generated model also runs in double precision, and each gradient
    row says how far TF's float32 gradient and ours are from it (round-off or not)."""
    out_dir = Path(out_dir)
    io = read_io(out_dir)
    entries = read_index(out_dir)
    module = import_generated(out_dir)
    model = load_weights(module, out_dir / "weights", fused=False).eval()
    parameters = dict(model.named_parameters())
    runner = runner or TFRunner(Path(model_path), weights)
    feeds = random_inputs(io, batch, seed)
    float_inputs = [s for s in io["inputs"] if np.issubdtype(np.dtype(s["dtype"]), np.floating)]
    compared, not_compared, notes = select_parameters(entries, model, runner.graph)

    # TensorFlow: outputs, then the gradients of sum(output * R)
    tf_outputs = runner.run([o["tf_name"] for o in io["outputs"]], feeds)
    rng = np.random.default_rng(seed + 1)
    multipliers = [rng.standard_normal(out.shape).astype(out.dtype)  # R; None: integer output
                   if np.issubdtype(out.dtype, np.floating) else None for out in tf_outputs]
    inputs_tf = [f"{s['tf_name']}:0" for s in float_inputs]
    grads, values = _tf_gradients(runner, io, feeds, multipliers, inputs_tf,
                                  [entry.tensor for entry in compared])
    tf_grads = dict(zip([f"input {s['name']}" for s in float_inputs],
                        [_to_nchw(g, s["nchw"]) for g, s in zip(grads, float_inputs)]))
    tf_grads |= {e.key: layout(g, e.transforms) for e, g in zip(compared, grads[len(inputs_tf):])}

    # PyTorch: the same loss through autograd (float32 keeps its .grad for an optimizer step)
    ours, our_grads = _torch_gradients(model, io, feeds, multipliers)
    exact = moved = None
    if float64:
        model64 = load_weights(module, out_dir / "weights", fused=False).double().eval()
        exact = _torch_gradients(model64, io, feeds, multipliers)[1]
        model64.zero_grad(set_to_none=True)
        moved = _torch_gradients(model64, io, feeds, multipliers, noise=KINK_NOISE)[1]

    report = GradReport([], [], not_compared, untied(entries, set(parameters)), notes,
                        model=model)
    for spec, tf_out, out in zip(io["outputs"], tf_outputs, ours):
        out = _to_nhwc(out, spec.get("nchw"))  # an image output is compared in TF's layout
        report.outputs.append((spec["tf_name"], _relative(out, tf_out, tf_out)))
    tensors = inputs_tf + [entry.tensor for entry in compared]
    for name, tensor in zip(tf_grads, tensors):
        row = _row(name, tensor, our_grads.get(name), tf_grads[name])
        if exact is not None and name in exact:
            row.tf_vs_f64 = _relative(tf_grads[name], exact[name], exact[name])
            row.ours_vs_f64 = _relative(our_grads[name], exact[name], exact[name])
            row.kink = _relative(moved[name], exact[name], exact[name])
        report.rows.append(row)
    report.noise_floor = max((row.kink or 0.0 for row in report.rows), default=0.0)
    rows = {row.name: row for row in report.rows}
    for entry, value in zip(compared, values):
        tf_value = layout(value, entry.transforms)
        row = rows[entry.key]
        row.value_rel = _relative(parameters[entry.key].detach().numpy(), tf_value, tf_value)
        report.tf_values[entry.key], report.tf_grads[entry.key] = tf_value, tf_grads[entry.key]
    return report


def _torch_gradients(model, io: dict, feeds: dict, multipliers: list, noise: float = 0.0):
    """(outputs, {"input <name>" or key: gradient}) of sum(output * R) by autograd, in the
    model's dtype, float inputs times (1 + `noise` x N(0, 1)); parameters nothing reaches
    get no entry."""
    import torch

    dtype = next(model.parameters(), torch.empty(0)).dtype
    rng = np.random.default_rng(12345)
    inputs = torch_inputs(io, feeds)
    named = {}
    for spec, tensor in zip(io["inputs"], inputs):
        if np.issubdtype(np.dtype(spec["dtype"]), np.floating):
            tensor = tensor.to(dtype)
            if noise:
                tensor = tensor * (1 + noise * torch.from_numpy(rng.standard_normal(
                    tuple(tensor.shape))).to(dtype))
            named[f"input {spec['name']}"] = tensor.requires_grad_(True)
    inputs = [named.get(f"input {spec['name']}", tensor)
              for spec, tensor in zip(io["inputs"], inputs)]
    with exact_attention() if dtype == torch.float64 else nullcontext():
        outputs = _as_list(model(*inputs))
    # R is drawn in TF's layout: an image output's is made NCHW like the output
    loss = sum((out * torch.from_numpy(_to_nchw(r, spec.get("nchw"))).to(dtype)).sum()
               for out, r, spec in zip(outputs, multipliers, io["outputs"]) if r is not None)
    loss.backward()
    named |= dict(model.named_parameters())
    grads = {name: tensor.grad.detach().numpy().copy() for name, tensor in named.items()
             if tensor.grad is not None}
    return [out.detach().numpy() for out in outputs], grads


def _row(name: str, tf_tensor: str, grad, tf_grad: np.ndarray) -> GradRow:
    ours = np.zeros(tf_grad.shape, np.float32) if grad is None else grad
    return GradRow(name, tf_tensor, list(ours.shape), _relative(ours, tf_grad, tf_grad),
                   tf_grad_max=float(np.abs(tf_grad).max(initial=0.0)))


def _tf_gradients(runner: TFRunner, io: dict, feeds: dict, multipliers: list, inputs: list[str],
                  tensors: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """TF's d loss / d x for the input tensors then the parameter tensors, and the values of
    the parameter tensors. A resource variable is differentiated at its reads."""
    import tensorflow as tf

    graph = runner.graph
    with graph.as_default():
        outputs = [graph.get_tensor_by_name(f"{o['tf_name']}:0") for o, r
                   in zip(io["outputs"], multipliers) if r is not None]
        holders = [tf.compat.v1.placeholder(out.dtype) for out in outputs]
        loss = tf.add_n([tf.reduce_sum(out * r) for out, r in zip(outputs, holders)])
        points = [[graph.get_tensor_by_name(name)] for name in inputs]
        points += [_read_points(graph.get_tensor_by_name(name)) for name in tensors]
        flat = [t for group in points for t in group]
        grads = tf.gradients(loss, flat)
        # an embedding table's gradient comes as IndexedSlices (the rows read): made dense
        fetch = [tf.zeros_like(t) if g is None else tf.convert_to_tensor(g)
                 for g, t in zip(grads, flat)]
    values = [group[0] for group in points[len(inputs):]]
    feed = {f"{k}:0": v for k, v in feeds.items()}
    feed |= dict(zip(holders, [r for r in multipliers if r is not None]))
    fetched, value_arrays = runner.session.run([fetch, values], feed)
    summed, start = [], 0
    for group in points:  # a variable read at several places: the sum of its gradients
        summed.append(np.sum(fetched[start:start + len(group)], axis=0))
        start += len(group)
    return summed, value_arrays


def _read_points(tensor) -> list:
    if tensor.dtype.name != "resource":
        return [tensor]
    reads = [op.outputs[0] for op in tensor.consumers() if op.type == "ReadVariableOp"]
    return reads or [tensor]


def print_grad_report(report: GradReport, tolerance: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if Console().is_terminal else 200)
    worst = sorted(report.rows, key=lambda r: max(r.grad_rel, r.value_rel or 0), reverse=True)
    table = Table(title=f"gradients of sum(output * R): the {min(SHOWN, len(worst))} worst of "
                        f"{len(report.rows)} (relative = max|ours - TF| / max|TF|)")
    float64 = any(row.tf_vs_f64 is not None for row in report.rows)
    columns = ["PyTorch", "TF tensor", "shape", "max|TF grad|", "grad rel", "value rel"]
    for column in columns + (["grad: TF vs f64", "ours vs f64", "f64 moved"] if float64 else []):
        table.add_column(column, overflow="fold",
                         justify="left" if column in ("PyTorch", "TF tensor") else "right")
    for row in worst[:SHOWN]:
        bad = row.grad_rel > max(tolerance, report.noise_floor) or (row.value_rel or 0) > tolerance
        value = "-" if row.value_rel is None else f"{row.value_rel:.3g}"
        cells = [row.name, row.tf_tensor, "×".join(map(str, row.shape)), f"{row.tf_grad_max:.3g}",
                 f"{row.grad_rel:.3g}", value]
        if float64:
            cells += [_maybe(row.tf_vs_f64), _maybe(row.ours_vs_f64), _maybe(row.kink)]
        table.add_row(*cells, style="bold red" if bad else None)
    console.print(table)
    for line in summary_lines(report, tolerance):
        console.print(line, highlight=False, soft_wrap=True)


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def summary_lines(report: GradReport, tolerance: float) -> list[str]:
    params = [row for row in report.rows if row.value_rel is not None]
    lines = [f"forward: {name} {rel:.3g}" for name, rel in report.outputs]
    lines.append(f"grad: {len(report.rows) - len(params)} inputs and {len(params)} parameters "
                 f"compared; worst gradient {max((r.grad_rel for r in report.rows), default=0):.3g}"
                 f", worst value {max((r.value_rel for r in params), default=0):.3g}")
    reasons: dict[str, list[str]] = {}
    for key, why in report.not_compared:
        reasons.setdefault(why, []).append(key)
    for why, keys in reasons.items():
        lines.append(f"not compared ({why}): {len(keys)}: {_listing(keys)}")
    for tensor, keys in report.untied.items():
        lines.append(f"untied: one TF variable is {len(keys)} PyTorch parameters: {tensor} -> "
                     f"{', '.join(keys)} (training would update the copies apart)")
    if any(row.kink is not None for row in report.rows):
        worst_kink = max(report.rows, key=lambda row: row.kink or 0.0)
        lines.append(f"noise floor {report.noise_floor:.3g}: our float64 gradients move by that "
                     f"much (at {worst_kink.name}) when the inputs move by {KINK_NOISE:g} "
                     "(relative), as float32 round-off moves them; a ReLU or max that flips makes "
                     f"the gradient jump. Gradients are judged against "
                     f"{max(tolerance, report.noise_floor):.3g} = max(tolerance, floor); "
                     "values and the forward against the tolerance")
    lines += [f"note: {note}" for note in report.notes]
    first = report.first_failure(tolerance)
    if first is not None:
        lines.append(f"first over the limit in graph order: {describe(first)}")
    return lines


def describe(row: GradRow) -> str:
    text = f"{row.name} (TF {row.tf_tensor}): gradient {row.grad_rel:.3g}"
    if row.tf_vs_f64 is not None:
        text += f" (from float64: TF {row.tf_vs_f64:.3g}, ours {row.ours_vs_f64:.3g})"
    return text + ("" if row.value_rel is None else f", value {row.value_rel:.3g}")


def _listing(keys: list[str], most: int = 4) -> str:
    return ", ".join(keys[:most]) + (f", ... ({len(keys) - most} more)" if len(keys) > most else "")
