"""The single-op matrix harness: one tiny TF graph per case, converted in-process, compared.

A case is a Python function of TF tensors (`fn(*inputs) -> tensor`) and the inputs it takes
(`Input(shape, dtype, kind)`, drawn with a fixed seed). The graph is saved as a SavedModel
whose signature is the graph's own inputs (fixed sizes), as a user exports it (or as a frozen
GraphDef with placeholders and an `output` node: `FORMAT`), converted with `to_ir` and `build`
in this process, the generated model imported and run, and its output compared with
TensorFlow's: max|ours - TF| / max|TF| <= 1e-5 for floats, equality for integers and
booleans, and the same dtype. Images (rank 4 and 5) are fed and read back in TF's layout
through the generated model's NCHW (io.json says which).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.sample_inputs import to_nchw
from codegen.verify import import_generated

FLOAT_TOLERANCE = 1e-5
# "savedmodel" (what users export: ~75 ms a case) or "graphdef" (~40 ms a case, measured on
# 2 busy cores); the refusal checks write GraphDefs (a hash table has no eager output)
FORMAT = "savedmodel"


@dataclass(frozen=True)
class Input:
    shape: tuple[int, ...] = (2, 3, 4)
    dtype: str = "float32"
    kind: str = "normal"  # normal, positive (0.1..3), unit (-0.9..0.9), above_one (1.1..3),
    # probability (0.05..0.95),
    # small (integers -5..5, no zero: "nonzero"; 0..7: "shift"), special (nan, inf, -inf,
    # numbers), bool


@dataclass(frozen=True)
class Case:
    id: str
    fn: Callable
    inputs: tuple[Input, ...] = (Input(),)
    tolerance: float = FLOAT_TOLERANCE
    extra: dict = field(default_factory=dict)


def draw(spec: Input, rng: np.random.Generator) -> np.ndarray:
    shape, kind = spec.shape, spec.kind
    if spec.dtype == "bool" or kind == "bool":
        return rng.random(shape) < 0.5
    if kind == "positive":
        values = rng.uniform(0.1, 3.0, shape)
    elif kind == "unit":
        values = rng.uniform(-0.9, 0.9, shape)
    elif kind == "above_one":
        values = rng.uniform(1.1, 3.0, shape)
    elif kind == "small":
        values = rng.integers(-5, 6, shape)
    elif kind == "probability":
        values = rng.uniform(0.05, 0.95, shape)
    elif kind == "shift":
        values = rng.integers(0, 8, shape)
    elif kind == "nonzero":
        values = rng.integers(1, 6, shape) * rng.choice([-1, 1], shape)
    elif kind == "special":
        values = rng.normal(0, 2, shape)
        flat = values.reshape(-1)
        flat[: 3 * (flat.size // 3):3] = np.nan
        flat[1::5] = np.inf
        flat[2::7] = -np.inf
    else:
        values = rng.normal(0, 1.5, shape)
    return np.asarray(values).astype(spec.dtype)


def write_graph(case: Case, pb: Path):
    """The case's graph (placeholders input0, ... of fixed size; `output`), written to `pb`."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.as_dtype(spec.dtype), spec.shape,
                                                 name=f"input{i}")
                        for i, spec in enumerate(case.inputs)]
        tf.identity(case.fn(*placeholders), name="output")
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    return graph


def run_tf(case: Case, arrays: list[np.ndarray], pb: Path) -> np.ndarray:
    """Build the graph, write it to `pb` and return TF's output on `arrays`."""
    tf = import_tf()
    with tf.compat.v1.Session(graph=write_graph(case, pb)) as session:
        return session.run("output:0", {f"input{i}:0": a for i, a in enumerate(arrays)})


def run_saved_model(case: Case, arrays: list[np.ndarray], folder: Path) -> np.ndarray:
    """Save the case as a SavedModel (signature: the inputs of fixed size) in `folder`; return
    TF's output on `arrays`."""
    tf = import_tf()
    module = tf.Module()
    signature = [tf.TensorSpec(spec.shape, tf.as_dtype(spec.dtype), name=f"input{i}")
                 for i, spec in enumerate(case.inputs)]
    module.f = tf.function(lambda *xs: case.fn(*xs), input_signature=signature)
    tf.saved_model.save(module, str(folder), signatures=module.f)
    return module.f(*arrays).numpy()


def run_ours(model: Path, arrays: list[np.ndarray], work: Path) -> np.ndarray:
    import torch

    to_ir(model, None, ["output"] if model.suffix == ".pb" else None, work / "ir", quiet=True)
    build(work / "ir", work / "model", quiet=True)
    model = import_generated(work / "model").load_model()  # the converted weights
    io = json.loads((work / "model" / ".codegen" / "io.json").read_text())
    feeds = [to_nchw(a, spec["nchw"]) for a, spec in zip(arrays, io["inputs"], strict=True)]
    with torch.no_grad():
        result = model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in feeds]).numpy()
    if io["outputs"][0]["nchw"]:  # an image comes back channels-first: as TF returns it
        result = result.transpose(0, *range(2, result.ndim), 1)
    return result


def check(case: Case, seed: int = 0) -> None:
    """Convert `case` and compare with TF; raises AssertionError with the figures."""
    rng = np.random.default_rng(seed)
    arrays = [draw(spec, rng) for spec in case.inputs]
    work = Path(tempfile.mkdtemp(prefix="op_matrix_"))
    try:
        model = work / ("op.pb" if FORMAT == "graphdef" else "saved")
        run = run_tf if FORMAT == "graphdef" else run_saved_model
        expected = np.asarray(run(case, arrays, model))
        ours = np.asarray(run_ours(model, arrays, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    compare(ours, expected, case.tolerance)


def refusal(case: Case) -> str:
    """The one-line message `to_ir` refuses `case` with (an UnsupportedOpsError, exit 4)."""
    from codegen.errors import UnsupportedOpsError

    work = Path(tempfile.mkdtemp(prefix="op_matrix_"))
    try:
        write_graph(case, work / "op.pb")
        try:
            to_ir(work / "op.pb", None, ["output"], work / "ir", quiet=True)
        except UnsupportedOpsError as exc:
            assert exc.exit_code == 4
            assert not (work / "ir").exists(), "an IR was written"
            return exc.message
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raise AssertionError(f"{case.id} converted: it should be refused")


def compare(ours: np.ndarray, expected: np.ndarray, tolerance: float = FLOAT_TOLERANCE) -> None:
    assert ours.dtype == expected.dtype, f"dtype {ours.dtype}, TF {expected.dtype}"
    assert ours.shape == expected.shape, f"shape {ours.shape}, TF {expected.shape}"
    if expected.dtype.kind != "f":
        assert np.array_equal(ours, expected), f"values differ:\nours {ours}\nTF {expected}"
        return
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(ours), nan), "NaNs differ"
    finite = np.isfinite(expected)
    assert np.array_equal(ours[~finite & ~nan], expected[~finite & ~nan]), "infinities differ"
    wide_ours = ours[finite].astype(np.float64)
    wide = expected[finite].astype(np.float64)
    scale = np.abs(wide).max() if wide.size else 0.0
    error = np.abs(wide_ours - wide).max() if wide.size else 0.0
    if scale == 0.0:
        assert error == 0.0, f"max error {error} where TF is all zeros"
        return
    assert error / scale <= tolerance, f"relative error {error / scale:.2e} > {tolerance:.0e}"
