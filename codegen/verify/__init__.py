"""`codegen verify`: run TensorFlow and the generated model on the same inputs.

The figure is max |PyTorch - TF| / max |TF| per output. With `float64=True` the generated
model also runs in double precision, and we report how far TF's float32 output and ours
are from it: on a deep net both are ~1e-5..1e-4 away, which is round-off, not a bug.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.errors import InputError
from codegen.progress import progress_bar
from codegen.sample_inputs import (
    batch_of,
    random_inputs,
    torch_inputs,
    varies,
)
from codegen.sample_inputs import to_nchw as _to_nchw  # noqa: F401


@dataclass
class Comparison:
    batch: int
    output: str
    shape: tuple
    rel_error: float  # max |ours - tf| / max |tf|
    tf_vs_f64: float | None = None  # max |tf - ours64| / max |ours64|
    ours_vs_f64: float | None = None


def import_generated(out_dir: Path):
    """Import OUT_DIR/model.py as a fresh module."""
    path = Path(out_dir) / "model.py"
    if not path.is_file():
        raise InputError(f"{path}: not found; run 'codegen build' first")
    name = f"codegen_generated_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid Python ({exc.msg}); fix the edit or "
                         "rebuild with --force") from None
    return module


def load_weights(module, weights_dir: Path, *, fused: bool = True):
    """`module.load_model(weights_dir)`; with fused=False every BatchNorm stays a module
    (for gradients, training mode, per-layer hooks and float64 references). A model.py
    without BatchNorms to fuse (or from before fuse()) has no `fused` parameter."""
    import inspect

    if not fused and "fused" in inspect.signature(module.load_model).parameters:
        return module.load_model(weights_dir, fused=False)
    return module.load_model(weights_dir)


def exact_attention():
    """A context for the float64 runs: `F.scaled_dot_product_attention` through torch's
    reference (math) kernel. A model that builds its additive mask in float32, as TF did
    (`mask.float()`), and runs in float64 gives CPU's fused kernel a float64 query and a
    float32 mask, and it silently computes wrong values (torch 2.13: keras-hub T5's cross
    attention 0.4 off); the math kernel computes them right."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


class TFRunner:
    """Runs a .meta + checkpoint, a frozen .pb, a SavedModel or a Keras file in a TF1 session."""

    def __init__(self, model_path: Path, weights: Path | None) -> None:
        from codegen.frontends.tensorflow.compat import import_tf
        from codegen.frontends.tensorflow.loader import checkpoint_prefix, load_model

        tf = import_tf()
        loaded = load_model(model_path, weights)  # same checks and messages as to-ir
        # the source's trainable values, and those its function never reads (verify/params.py)
        self.trainable_count, self.trainable_unread = loaded.trainable_count, loaded.trainable_unread
        if Path(model_path).suffix != ".meta":  # frozen: the loaded graph holds the weights
            self.graph = loaded.graph
            self.session = tf.compat.v1.Session(graph=self.graph)
            return
        self.graph = tf.Graph()
        with self.graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(str(model_path), clear_devices=True)
            self.session = tf.compat.v1.Session(graph=self.graph)
            saver.restore(self.session, str(checkpoint_prefix(Path(model_path), weights)))

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        fetches = [f"{name}:0" for name in outputs]
        return self.session.run(fetches, self.feed_dict(fetches, feeds))

    def feed_dict(self, fetches: list[str], feeds: dict[str, np.ndarray]) -> dict:
        """`feeds` by tensor name, and an array for every other placeholder the fetches need
        (one the IR does not read, e.g. a second placeholder whose value codegen took at
        conversion): drawn like the inputs, from its TF shape and dtype."""
        feed_dict = {f"{k}:0": v for k, v in feeds.items()}
        seen, stack, missing = set(), [self.graph.get_tensor_by_name(f).op for f in fetches], []
        while stack:
            op = stack.pop()
            if op.name in seen or f"{op.name}:0" in feed_dict:
                continue
            seen.add(op.name)
            if op.type == "Placeholder":
                shape = op.outputs[0].shape
                missing.append({"tf_name": op.name, "nchw": False,
                                "shape": shape.as_list() if shape.rank is not None else [],
                                "dtype": np.dtype(op.outputs[0].dtype.as_numpy_dtype).name})
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
        if missing:
            batch = batch_of({"inputs": [{"tf_name": k} for k in feeds]}, feeds) if feeds else 1
            drawn = random_inputs({"inputs": missing}, batch, seed=len(missing))
            feed_dict.update({f"{k}:0": v for k, v in drawn.items()})
        return feed_dict


def read_io(out_dir: Path) -> dict:
    """OUT_DIR/.codegen/io.json: the model's inputs and outputs, as `codegen build` saw them."""
    io_path = Path(out_dir) / ".codegen" / "io.json"
    try:
        return json.loads(io_path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{io_path}: missing or damaged; run 'codegen build' into "
                         f"{out_dir} first") from None


def read_inputs(path: Path, io: dict) -> dict[str, np.ndarray]:
    """`--inputs FILE.npz`: the user's own arrays, one per input (by its TF name), in TF's
    layout (NHWC for images). Never unpickled."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz of plain arrays ({exc})") from None
    names = [spec["tf_name"] for spec in io["inputs"]]
    missing = [name for name in names if name not in arrays]
    if missing:
        raise InputError(f"{path}: no array for input(s) {', '.join(map(repr, missing))}; "
                         f"the .npz needs one array per input: {', '.join(map(repr, names))}")
    return {name: arrays[name].astype(spec["dtype"]) for name, spec in zip(names, io["inputs"])}


def verify(model_path: Path, weights: Path | None, out_dir: Path, *, batches=(4, 1),
           seed: int = 0, float64: bool = True, runner: TFRunner | None = None,
           quiet: bool = True, inputs: Path | None = None) -> list[Comparison]:
    import torch

    out_dir = Path(out_dir)
    io = read_io(out_dir)
    module = import_generated(out_dir)  # before TensorFlow: a broken edit fails fast
    try:
        model = load_weights(module, out_dir / "weights")
        model64 = load_weights(module, out_dir / "weights", fused=False).double() if float64 else None
    except Exception as exc:  # noqa: BLE001 - the user's (possibly edited) code
        raise InputError(f"{out_dir / 'model.py'}: load_model() failed ({type(exc).__name__}: "
                         f"{str(exc).strip()[:150]}); fix your edits or rebuild with --force") from None
    given = read_inputs(Path(inputs), io) if inputs is not None else None
    if given:  # the user's arrays: one batch, of their size
        batches = (len(next(iter(given.values()))),)
    runner = runner or TFRunner(Path(model_path), weights)
    results = []
    # each draw: a batch where the batch is unknown, and its own length / image size where
    # those are; a spec with no unknown size is drawn once (fixed sizes are kept as they are)
    draws = [(batch, min(i, 1)) for i, batch in enumerate(batches)][:2 if varies(io) else 1]
    for batch, draw in progress_bar(draws, "verify", quiet=quiet):
        feeds = given or random_inputs(io, batch, seed + batch, draw)
        batch = batch_of(io, feeds)
        expected = runner.run([o["tf_name"] for o in io["outputs"]], feeds)
        tensors = torch_inputs(io, feeds)
        with torch.no_grad():
            ours = _as_list(model(*tensors))
            if float64:
                with exact_attention():
                    ours64 = _as_list(model64(*[t.double() if t.is_floating_point() else t
                                                for t in tensors]))
            else:
                ours64 = None
        for index, spec in enumerate(io["outputs"]):  # an NCHW output is compared as NHWC
            tf_out, pt_out = expected[index], _to_nhwc(ours[index].numpy(), spec.get("nchw"))
            comparison = Comparison(batch, spec["tf_name"], tuple(pt_out.shape),
                                    _relative(pt_out, tf_out, tf_out))
            if tuple(tf_out.shape) != tuple(pt_out.shape):
                comparison.rel_error = float("inf")
            if ours64 is not None:
                exact = _to_nhwc(ours64[index].numpy(), spec.get("nchw"))
                comparison.tf_vs_f64 = _relative(tf_out, exact, exact)
                comparison.ours_vs_f64 = _relative(pt_out, exact, exact)
            results.append(comparison)
    return results


def _to_nhwc(array: np.ndarray, nchw: bool | None) -> np.ndarray:
    """NCHW -> NHWC (NCDHW -> NDHWC)."""
    return array.transpose(0, *range(2, array.ndim), 1) if nchw else array


def _as_list(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _relative(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:  # an empty tensor (a zero size): equal shapes are all there is to compare
        return 0.0
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(scale).max(), 1e-30))
