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

from codegen.backends.pytorch.check import check_runs
from codegen.backends.pytorch.generate import generate
from codegen.backends.pytorch.ops import NUM_BATCHES
from codegen.dtypes import STORED_AS
from codegen.errors import InvalidIRError, MergeConflictError
from codegen.ir.graph import Graph
from codegen.ir.passes import run_passes
from codegen.ir.passes.layout import channels_first, has_images, spatial_ranks
from codegen.ir.validate import load_ir
from codegen.ir.weights import copy_weight, sha256_file
from codegen.parallel import ordered_map
from codegen.progress import progress_bar
from codegen.staging import keep_file, staged_dir

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
          quiet: bool = False, check: bool = True) -> BuildReport:
    ir_dir, out_dir = Path(ir_dir), Path(out_dir)
    graph = load_ir(ir_dir)
    tf_layout = graph.layout
    graph = run_passes(graph)
    generated = generate(graph, templates=templates)
    previous = _read_json(out_dir / STATE_DIR / "weights.json")
    model_text, merged = _merge(out_dir, generated.source, force)
    backup = force and (out_dir / "model.py").is_file() and _edited(out_dir, generated.source)
    with staged_dir(out_dir) as temp:
        _carry_over(out_dir, temp, set(previous) | set(generated.state), backup=backup)
        index, written, parameters = _write_weights(graph, ir_dir, generated.state, previous,
                                                     out_dir, temp, quiet)
        (temp / "weights" / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        (temp / STATE_DIR).mkdir(exist_ok=True)
        (temp / STATE_DIR / "model.py").write_text(generated.source)
        fingerprints = {key: entry["fingerprint"] for key, entry in index.items()}
        (temp / STATE_DIR / "weights.json").write_text(json.dumps(fingerprints, indent=1) + "\n")
        io = _io(graph, tf_layout)
        (temp / STATE_DIR / "io.json").write_text(json.dumps(io, indent=1) + "\n")
        layers = _layers(graph, generated.layers, tf_layout)
        (temp / STATE_DIR / "layers.json").write_text(json.dumps(layers, indent=1) + "\n")
        if backup:
            keep_file(out_dir / "model.py", temp / "model.py.bak")
        (temp / "model.py").write_text(model_text)
        files_written = written + len(GENERATED) + int(backup)
        if check:  # code that cannot run is never swapped in
            check_runs(temp, out_dir, io, generated, graph, merged=model_text != generated.source,
                       templates=templates)
    lines = sum(1 for line in model_text.splitlines() if line.strip())
    return BuildReport(out_dir, generated.classes, lines, parameters, written,
                       len(index) - written, merged, generated.notes, files_written)


# Files of the output folder that every build writes anew (others are carried over).
GENERATED = {"model.py", "weights/index.json", f"{STATE_DIR}/model.py",
             f"{STATE_DIR}/weights.json", f"{STATE_DIR}/io.json", f"{STATE_DIR}/layers.json"}


def _carry_over(out_dir: Path, temp: Path, weight_keys: set[str], *, backup: bool) -> None:
    """Hard-link the files of the old output that this build does not write (your own files,
    model.py.merge, ...) into the staged folder."""
    if not out_dir.is_dir():
        return
    ours = GENERATED | {f"weights/{key}.npy" for key in weight_keys}
    if backup:
        ours.add("model.py.bak")
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir).as_posix()
        if relative.startswith(".codegen-tmp-"):  # left by a killed run of an older codegen
            continue
        if relative not in ours and (path.is_file() or path.is_symlink()):
            keep_file(path, temp / relative)


def _hash_problems(graph: Graph, ir_dir: Path, mismatched: list[str]) -> InvalidIRError:
    """One error for every weight file whose sha256 differs from graph.json."""
    files = {graph.weights[name].file: graph.weights[name].tf_name or name for name in mismatched}
    problems = [f"weight {name!r}: {file} does not match its sha256 in graph.json"
                for file, name in files.items()]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidIRError(f"{Path(ir_dir) / 'graph.json'}: {problems[0]}{more}; the file was "
                          "changed after 'codegen to-ir': run it again", details=problems)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_weights(graph, ir_dir, state, previous, out_dir, temp, quiet):
    """Write OUT_DIR/weights/<key>.npy for every state_dict key (layout transforms applied),
    keeping files whose source and layout did not change. Every IR weight file is checked
    against its sha256 on the way; mismatches are reported together at the end."""
    (temp / "weights").mkdir(parents=True, exist_ok=True)

    def one(key: str) -> tuple[dict, bool, bool]:  # (index entry, written, hash matches)
        weight = state[key]
        if weight == NUM_BATCHES:
            entry = None
            info = {"tf_name": "", "shape": [], "fingerprint": "num_batches_tracked=0"}
        else:
            entry = graph.weights[weight]
            info = _index_entry(entry, weight)
        old_file = out_dir / "weights" / f"{key}.npy"
        if previous.get(key) == info["fingerprint"] and old_file.is_file():
            keep_file(old_file, temp / "weights" / f"{key}.npy")
            return info, False, entry is None or sha256_file(Path(ir_dir) / entry.file) == entry.sha256
        target = temp / "weights" / f"{key}.npy"
        if entry is None:
            np.save(target, np.zeros((), np.int64), allow_pickle=False)
            return info, True, True
        return info, True, copy_weight(ir_dir, entry, target)

    index, written, parameters, mismatched = {}, 0, 0, set()
    keys = list(state)
    for key, (info, new, intact) in zip(keys, ordered_map(one, progress_bar(
            keys, "writing weights", quiet=quiet))):
        index[key] = info
        written += new
        if state[key] != NUM_BATCHES:
            parameters += int(np.prod(info["shape"]))
            if not intact:
                mismatched.add(state[key])
    used = {graph.weights[name].file for name in state.values() if name != NUM_BATCHES}
    mismatched |= {name for name, entry in graph.weights.items()  # files no key needs
                   if entry.file not in used and sha256_file(Path(ir_dir) / entry.file) != entry.sha256}
    if mismatched:
        raise _hash_problems(graph, ir_dir, [name for name in graph.weights if name in mismatched])
    return index, written, parameters


def _index_entry(entry, weight: str) -> dict:
    """weights/index.json's entry of one state_dict key: where its values come from.

    `source` is the variable's own name (TF1: the checkpoint key; Keras: `variable.path`),
    `tensor` the TF tensor holding it in the graph codegen read, and `transforms` the steps
    (["transpose", perm], ["reshape", shape]) that turn that array into this tensor, so a
    parameter can be traced back and another checkpoint of the same network loaded."""
    return {"tf_name": entry.tf_name or weight, "source": entry.source_name or weight,
            "tensor": f"{entry.tf_name or weight}:0",
            "transforms": [[kind, list(argument)] for kind, argument in entry.transforms],
            "shape": entry.out_shape,
            **({"dtype": entry.dtype} if entry.dtype in STORED_AS else {}),  # bits in the .npy
            "fingerprint": f"{entry.sha256}:{list(entry.transforms)}"}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MergeConflictError(f"{path}: not UTF-8 text (byte {exc.start}); fix it and build "
                                 "again, or pass --force to regenerate it (kept as .bak)") from None


def _edited(out_dir: Path, new: str) -> bool:
    """model.py differs from both the last generated text and the new one."""
    try:
        current = (out_dir / "model.py").read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return True  # certainly not what we wrote
    base_path = out_dir / STATE_DIR / "model.py"
    base = base_path.read_text() if base_path.exists() else None
    return current not in (base, new)


def _merge(out_dir: Path, new: str, force: bool) -> tuple[str, bool]:
    """The text to write as model.py, keeping the user's edits (with --force: `new`)."""
    current_path, base_path = out_dir / "model.py", out_dir / STATE_DIR / "model.py"
    if force or not current_path.exists() or not _edited(out_dir, new):
        return new, False
    current = _read_text(current_path)
    base = base_path.read_text() if base_path.exists() else None
    if base is None:
        raise MergeConflictError(
            f"{current_path}: exists but was not written by codegen; "
            "move it away or pass --force (it is kept as model.py.bak)"
        )
    try:
        ast.parse(current)
    except SyntaxError as exc:
        raise MergeConflictError(
            f"{current_path}:{exc.lineno}: your edit is not valid Python ({exc.msg}); fix it and "
            "build again, or pass --force to regenerate it (your file is kept as model.py.bak)"
        ) from None
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


def _io(graph: Graph, tf_layout: str = "NHWC") -> dict:
    """What verify needs: TF names and layouts of inputs and outputs, and for integer
    inputs that index an embedding table the table's size (realistic token ids)."""
    inputs, spatial = [], spatial_ranks(graph)
    for i in graph.inputs:
        spec = {"name": i.name, "tf_name": i.tf_name or i.name, "shape": i.shape,
                "dtype": i.dtype, "nchw": len(i.shape) in spatial}
        tables = [graph.weights[node.weights["table"]].out_shape[0] for node in graph.nodes.values()
                  if node.op == "embedding" and node.inputs == [f"{i.name}:0"]]
        if tables:
            spec["ids_below"] = min(tables)
        inputs.append(spec)
    return {
        "inputs": inputs,
        "outputs": [{"name": o.name, "tf_name": o.tf_name or o.name,
                     "shape": graph.tensor(o.source).shape,
                     "nchw": tf_layout == "NHWC" and len(graph.tensor(o.source).shape) in spatial
                     and has_images(graph)}  # else a rank-4 array leaves in TF's layout
                    for o in graph.outputs],
    }


def _layers(graph: Graph, layers: dict[str, str], tf_layout: str) -> list[dict]:
    """What `verify --per-layer` needs: each layer module, its TF tensor and layout."""
    rows, spatial = [], spatial_ranks(graph)
    for module, node_name in layers.items():
        node = graph.nodes[node_name]
        shape = node.outputs[0].shape
        # a 1-D conv / pool / BatchNorm1d writes its sequence [N, C, T] (passes/layout_conv.py)
        sequence = len(shape) == 3 and (channels_first(node.op) or node.op == "batch_norm")
        rows.append({"module": module, "node": node_name,
                     "tf_tensor": graph.tf_tensor(f"{node_name}:0"), "shape": shape,
                     "nchw": tf_layout == "NHWC" and (len(shape) in spatial or sequence)})
        if "channel_order" in graph.nodes[node_name].attrs:  # a conv before a pixel shuffle
            rows[-1]["channels"] = graph.nodes[node_name].attrs["channel_order"]
    return rows
