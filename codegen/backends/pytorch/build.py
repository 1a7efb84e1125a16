"""`codegen build`: IR folder -> OUT_DIR/model.py + OUT_DIR/weights/<state_dict key>.npy.

Regeneration keeps hand edits: OUT_DIR/.codegen/model.py holds the last generated text.
If model.py differs from it, the user edited it, and the new output is merged in (3-way).
Weight files whose source and layout did not change are not rewritten.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen.backends.pytorch.generate import generate
from codegen.backends.pytorch.ops import NUM_BATCHES
from codegen.errors import MergeConflictError
from codegen.ir.graph import Graph
from codegen.ir.passes import run_passes
from codegen.ir.validate import load_ir
from codegen.ir.weights import load_array
from codegen.progress import progress_bar
from codegen.staging import staged_files

STATE_DIR = ".codegen"


@dataclass
class BuildReport:
    out_dir: Path
    classes: int
    lines: int
    parameters: int
    weights_written: int
    weights_kept: int
    merged: bool = False
    notes: list[str] = field(default_factory=list)
    files_written: int = 0  # every file replaced in OUT_DIR (model.py, weights, state)

    @property
    def model_py(self) -> Path:
        return self.out_dir / "model.py"

    @property
    def weights_dir(self) -> Path:
        return self.out_dir / "weights"

    def summary(self) -> str:
        merged = ", your edits merged" if self.merged else ""
        return (f"{self.model_py}: {self.classes} classes, {self.lines} lines, "
                f"{self.parameters:,} parameters; {self.files_written} files written "
                f"(weights: {self.weights_written} written, {self.weights_kept} unchanged){merged}")


def build(ir_dir: Path, out_dir: Path, *, templates: Path | None = None, force: bool = False,
          quiet: bool = False) -> BuildReport:
    ir_dir, out_dir = Path(ir_dir), Path(out_dir)
    graph = load_ir(ir_dir)
    tf_layout = graph.layout
    graph = run_passes(graph)
    generated = generate(graph, templates=templates)
    previous = _read_json(out_dir / STATE_DIR / "weights.json")
    with staged_files(out_dir) as temp:
        index, written, parameters = _write_weights(graph, ir_dir, generated.state, previous,
                                                     out_dir, temp, quiet)
        model_text, merged = _merge(out_dir, generated.source, force, temp)
        (temp / "weights").mkdir(exist_ok=True)
        (temp / "weights" / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        (temp / STATE_DIR).mkdir(exist_ok=True)
        (temp / STATE_DIR / "model.py").write_text(generated.source)
        fingerprints = {key: entry["fingerprint"] for key, entry in index.items()}
        (temp / STATE_DIR / "weights.json").write_text(json.dumps(fingerprints, indent=1) + "\n")
        (temp / STATE_DIR / "io.json").write_text(json.dumps(_io(graph), indent=1) + "\n")
        layers = _layers(graph, generated.layers, tf_layout)
        (temp / STATE_DIR / "layers.json").write_text(json.dumps(layers, indent=1) + "\n")
        (temp / "model.py").write_text(model_text)
        files_written = sum(1 for path in temp.rglob("*") if path.is_file())
    for stale in set(previous) - set(index):
        (out_dir / "weights" / f"{stale}.npy").unlink(missing_ok=True)
    lines = sum(1 for line in model_text.splitlines() if line.strip())
    return BuildReport(out_dir, generated.classes, lines, parameters, written,
                       len(index) - written, merged, generated.notes, files_written)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_weights(graph, ir_dir, state, previous, out_dir, temp, quiet):
    index, written, parameters = {}, 0, 0
    (temp / "weights").mkdir(parents=True, exist_ok=True)
    for key in progress_bar(list(state), "writing weights", quiet=quiet):
        weight = state[key]
        if weight == NUM_BATCHES:
            fingerprint, tf_name, shape = "num_batches_tracked=0", "", []
        else:
            entry = graph.weights[weight]
            fingerprint = f"{entry.sha256}:{entry.transforms}"
            tf_name, shape = entry.tf_name or weight, entry.out_shape
            parameters += int(np.prod(shape))
        index[key] = {"tf_name": tf_name, "shape": shape, "fingerprint": fingerprint}
        if previous.get(key) == fingerprint and (out_dir / "weights" / f"{key}.npy").is_file():
            continue
        if weight == NUM_BATCHES:
            array = np.zeros((), np.int64)
        else:
            array = np.ascontiguousarray(load_array(ir_dir, graph.weights[weight]))
        np.save(temp / "weights" / f"{key}.npy", array, allow_pickle=False)
        written += 1
    return index, written, parameters


def _merge(out_dir: Path, new: str, force: bool, temp: Path) -> tuple[str, bool]:
    """The text to write as model.py, keeping the user's edits."""
    current_path, base_path = out_dir / "model.py", out_dir / STATE_DIR / "model.py"
    if not current_path.exists():
        return new, False
    current = current_path.read_text()
    base = base_path.read_text() if base_path.exists() else None
    if current in (base, new):
        return new, False
    if force:
        (temp / "model.py.bak").write_text(current)
        return new, False
    if base is None:
        raise MergeConflictError(
            f"{current_path}: exists but was not written by codegen; "
            "move it away or pass --force (it is kept as model.py.bak)"
        )
    import merge3

    merge = merge3.Merge3(base.splitlines(True), current.splitlines(True), new.splitlines(True))
    merged = "".join(merge.merge_lines(name_a="your edits", name_b="regenerated",
                                       start_marker="<<<<<<<", end_marker=">>>>>>>"))
    conflicts = any(region[0] == "conflict" for region in merge.merge_regions())
    if not conflicts and _parses(merged):
        return merged, True
    _write_atomic(out_dir / "model.py.merge", merged)
    raise MergeConflictError(
        f"{current_path}: your edits conflict with the regenerated code; model.py is "
        f"unchanged, the merge with conflict markers is in model.py.merge: resolve it, "
        "copy it over model.py and build again (or pass --force to overwrite, keeping a backup)"
    )


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def _write_atomic(path: Path, text: str) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temp, path)


def _io(graph: Graph) -> dict:
    """What verify needs: TF names and layouts of inputs and outputs."""
    return {
        "inputs": [{"name": i.name, "tf_name": i.tf_name or i.name, "shape": i.shape,
                    "dtype": i.dtype, "nchw": len(i.shape) == 4} for i in graph.inputs],
        "outputs": [{"name": o.name, "tf_name": o.tf_name or o.name,
                     "shape": graph.tensor(o.source).shape} for o in graph.outputs],
    }


def _layers(graph: Graph, layers: dict[str, str], tf_layout: str) -> list[dict]:
    """What `verify --per-layer` needs: each layer module, its TF tensor and layout."""
    rows = []
    for module, node_name in layers.items():
        shape = graph.nodes[node_name].outputs[0].shape
        rows.append({"module": module, "node": node_name,
                     "tf_tensor": graph.tf_tensor(f"{node_name}:0"), "shape": shape,
                     "nchw": tf_layout == "NHWC" and len(shape) == 4})
    return rows
