"""Converting bfloat16 Llamas up to 1.1 B parameters: python bench/llama_scale.py [--sizes S ...]

For each size, a keras-hub LlamaBackbone with `dtype="bfloat16"` (random weights, built offline
from its constructor: 32,000 tokens, heads of 64, 4 key/value heads, untied output embedding;
"large" is TinyLlama's shape, 1.1 B parameters) is made in a process of its own, which also
computes the reference: a float32 copy of the same model (every weight cast exactly) run on a
short input (batch 2, length 7, the second row partly padded); then it is exported as a
SavedModel. Then, each a fresh process measured for wall time and peak RSS (bench/measure.py):

1. `codegen to-ir` and `codegen build` (the issue's bar: at most 1.5 GB each at 1 B parameters);
   if build refuses its output (its run of the model fails), `build --no-check` too, so that
   the checks below still run;
2. the checks: graph.json names bfloat16, the .npy files hold its bits (uint16),
   load_model() gives bfloat16 parameters, load_model(dtype=torch.float32) matches the
   float32 reference (max abs diff / max abs reference, bar 1e-4);
3. the peers on the same SavedModel: tf2onnx (--opset 17) then onnx2torch, in bench/.venv
   (bench/run.py makes it); a peer whose process tree passes --peer-limit GB is killed and
   recorded as such (the machine is shared).

A line fit of peak RSS over the bfloat16 weight bytes gives the slope. The table goes to
bench/RESULTS.md. Each size's files are deleted before the next (the 1.1 B SavedModel takes
2.2 GB of disk); --keep keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Measurement, MemoryLimitExceeded, run
from results import cell, slope_line, write_section

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# (layers, hidden size, MLP size): about 0.16, 0.39 and 1.10 billion parameters
SIZES = {"small": (8, 1024, 2816), "medium": (12, 1536, 4096), "large": (22, 2048, 5632)}
EXPORT = r'''
import gc, json, sys
import numpy as np
import keras, keras_hub
layers, hidden, mlp, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
config = dict(vocabulary_size=32000, num_layers=layers, num_query_heads=hidden // 64,
              num_key_value_heads=4, hidden_dim=hidden, intermediate_dim=mlp)
keras.utils.set_random_seed(0)
model = keras_hub.models.LlamaBackbone(**config, dtype="bfloat16")
rng = np.random.default_rng(0)
inputs = {"token_ids": rng.integers(0, 32000, (2, 7)).astype("int32"),
          "padding_mask": np.array([[1] * 7, [1] * 4 + [0] * 3], dtype="int32")}
copy = keras_hub.models.LlamaBackbone(**config, dtype="float32")
for target, source in zip(copy.weights, model.weights, strict=True):
    target.assign(keras.ops.cast(source, "float32"))  # exact: float32 holds every bfloat16
reference = np.asarray(copy(inputs))
np.savez(out + "/reference.npz", reference=reference, **inputs)
trainable = model.count_params()
del copy
gc.collect()
model.export(out + "/saved", verbose=False)
print(json.dumps({"parameters": trainable}))
'''
CHECK = r'''
import glob, json, sys
import numpy as np
import torch
folder = sys.argv[1]
graph = json.load(open(folder + "/ir/graph.json"))
weights = graph["weights"]
named = sorted({entry["dtype"] for entry in weights.values()})
sys.path.insert(0, folder + "/model")
import model as generated
index = json.load(open(folder + "/model/weights/index.json")) if glob.glob(folder + "/model/weights/index.json") else {}
stored = sorted({str(np.load(path, mmap_mode="r").dtype) for path in glob.glob(folder + "/model/weights/*.npy")})
data = np.load(folder + "/reference.npz")
model = generated.load_model()
parameters = sorted({str(p.dtype) for p in model.parameters()})
count = sum(p.numel() for p in model.parameters())
try:  # the bfloat16 model itself, on the same input
    with torch.no_grad():
        model(token_ids=torch.from_numpy(data["token_ids"]),
              padding_mask=torch.from_numpy(data["padding_mask"]))
    bfloat16_run = "runs"
except Exception as exc:
    bfloat16_run = f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
del model
model = generated.load_model(dtype=torch.float32)
with torch.no_grad():
    out = model(token_ids=torch.from_numpy(data["token_ids"]),
                padding_mask=torch.from_numpy(data["padding_mask"]))
out = out.numpy()
reference = data["reference"]
error = float(np.abs(out - reference).max() / np.abs(reference).max())
print(json.dumps({"graph_dtypes": named, "npy_dtypes": stored, "parameter_dtypes": parameters,
                  "parameters": count, "error": error, "bfloat16_run": bfloat16_run}))
'''


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def attempt(label: str, command: list[str], **options) -> Measurement | str:
    """The measurement, or a one-line account of how the step failed."""
    try:
        return run(label, command, **options)
    except MemoryLimitExceeded as exc:
        return str(exc).split(": ", 1)[1]
    except subprocess.CalledProcessError as exc:
        lines = [line for line in (exc.output or "").splitlines() if line.strip()]
        last = lines[-1] if lines else "(no output)"
        found = re.search(r"fails on sample inputs [^(]*\((\w+: [^)]*)\)", last)
        reason = f"its run of the model fails: {found[1]}" if found else last[:300]
        return f"exit {exc.returncode} after {cell(exc.measurement)}: {reason}"


def measure_size(work: Path, name: str, python: Path | None, limit: int, keep: bool) -> dict:
    layers, hidden, mlp = SIZES[name]
    folder = work / f"llama_{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    made = run("export", [sys.executable, "-c", EXPORT, str(layers), str(hidden), str(mlp),
                          str(folder)], env=env(), log=folder / "export.log")
    row = {"name": name, "shape": (layers, hidden, mlp), "export": made,
           **json.loads((folder / "export.log").read_text().strip().splitlines()[-1])}
    cli = [sys.executable, "-m", "codegen.cli"]
    row["to-ir"] = attempt("to-ir", cli + ["to-ir", str(folder / "saved"), "-o", str(folder / "ir"), "-q"],
                           env=env(), log=folder / "to-ir.log")
    row["build"] = attempt("build", cli + ["build", str(folder / "ir"), "-o", str(folder / "model"), "-q"],
                           env=env(), log=folder / "build.log") \
        if isinstance(row["to-ir"], Measurement) else "not run (to-ir failed)"
    row["check"] = "not run (build failed)"
    if isinstance(row["to-ir"], Measurement) and not isinstance(row["build"], Measurement):
        # build refused its own output; build it unchecked so that the rest can be measured
        row["build --no-check"] = attempt("build", cli + ["build", str(folder / "ir"), "-o",
                                                          str(folder / "model"), "-q", "--no-check"],
                                          env=env(), log=folder / "build-no-check.log")
    if isinstance(row.get("build --no-check", row["build"]), Measurement):
        row["check"] = attempt("check", [sys.executable, "-c", CHECK, str(folder)], env=env(),
                               log=folder / "check.log")
        if isinstance(row["check"], Measurement):
            row["checks"] = json.loads((folder / "check.log").read_text().strip().splitlines()[-1])
    if python is not None:
        peer_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        peer_env.pop("PYTHONPATH", None)
        row["tf2onnx"] = attempt("tf2onnx", [str(python), "-m", "tf2onnx.convert", "--saved-model",
                                             str(folder / "saved"), "--opset", "17", "--output",
                                             str(folder / "model.onnx")],
                                 env=peer_env, log=folder / "tf2onnx.log", limit=limit)
        row["onnx2torch"] = attempt("onnx2torch", [str(python), "-c", (
            "import sys, onnx2torch, torch; "
            "torch.save(onnx2torch.convert(sys.argv[1]).state_dict(), sys.argv[2])"),
            str(folder / "model.onnx"), str(folder / "model.pth")],
            env=peer_env, log=folder / "onnx2torch.log", limit=limit) \
            if isinstance(row["tf2onnx"], Measurement) else "not run (tf2onnx failed)"
    if not keep:
        shutil.rmtree(folder)
    return row


def show(value) -> str:
    return cell(value) if isinstance(value, Measurement) else value


def report(rows: list[dict], limit: int) -> str:
    peers = "tf2onnx" in rows[0]
    lines = [
        "## Scale: bfloat16 keras-hub Llama SavedModels, 0.16 to 1.1 B parameters",
        "",
        ("`python bench/llama_scale.py`. Each step a fresh process: wall time, peak RSS of its "
         "process tree (bench/measure.py). Llama shapes: 32,000 tokens, heads of 64, 4 key/value "
         "heads, untied output embedding (large = TinyLlama 1.1B's shape). Bar (issue 21): "
         "to-ir and build each at most 1,536 MB at 1 B parameters, the weights staying bfloat16, "
         "load_model(dtype=torch.float32) within 1e-4 of a float32 copy of the source."
         + (f" The peers ran in bench/.venv and were killed past {limit / 2**30:.0f} GiB." if peers else "")),
        "",
        "| layers, hidden, MLP | parameters | bfloat16 weights | codegen to-ir | codegen build |"
        " build --no-check |" + (" tf2onnx | onnx2torch |" if peers else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if peers else ""),
    ]
    for row in rows:
        lines.append(f"| {', '.join(map(str, row['shape']))} | {row['parameters']:,} | "
                     f"{2 * row['parameters'] / 2**30:.2f} GiB | {show(row['to-ir'])} | {show(row['build'])} | "
                     f"{show(row.get('build --no-check', '-'))} |"
                     + (f" {show(row['tf2onnx'])} | {show(row['onnx2torch'])} |" if peers else ""))
    sizes = [2 * row["parameters"] for row in rows]
    steps = [[row.get(k) if isinstance(row.get(k), Measurement) else None
              for k in ("to-ir", "build", "build --no-check")] for row in rows]
    lines += ["", slope_line(sizes, steps, ("to-ir", "build", "build --no-check"))]
    lines += ["", "| size | the checks (after build) |", "| --- | --- |"]
    for row in rows:
        checks = row.get("checks")
        if checks is None:
            text = show(row["check"])
        else:
            text = (f"graph.json weight dtypes {', '.join(checks['graph_dtypes'])}; .npy dtypes "
                    f"{', '.join(checks['npy_dtypes'])}; load_model() parameters "
                    f"{', '.join(checks['parameter_dtypes'])} ({checks['parameters']:,}); "
                    f"the bfloat16 model {checks['bfloat16_run']}; "
                    f"load_model(dtype=torch.float32) vs the float32 copy: {checks['error']:.1e} "
                    f"({show(row['check'])} for the checks)")
        lines.append(f"| {row['name']} | {text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    parser.add_argument("--venv", type=Path, default=BENCH / ".venv", help="the peers' environment")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peer-limit", type=float, default=8.0, help="GiB of RSS a peer may reach")
    parser.add_argument("--keep", action="store_true", help="keep each size's files")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    python = None
    if not args.no_peers:
        from run import ensure_venv
        python = ensure_venv(args.venv.resolve())
    limit = int(args.peer_limit * 2**30)
    rows = []
    for name in args.sizes:
        print(f"{name}...", flush=True)
        row = measure_size(args.work.resolve(), name, python, limit, args.keep)
        rows.append(row)
        print(f"  {row['parameters']:,} parameters (export {show(row['export'])}): " + "; ".join(
            f"{key} {show(row[key])}" for key in ("to-ir", "build", "build --no-check", "check", "tf2onnx",
                                                  "onnx2torch")
            if key in row), flush=True)
    text = report(rows, limit)
    if not args.no_write:
        write_section(BENCH / "RESULTS.md", "llama_scale.py", text)
    print(text)


if __name__ == "__main__":
    main()
