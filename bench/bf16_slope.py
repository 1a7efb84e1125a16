"""Peak memory of converting bfloat16 transformers: python bench/bf16_slope.py [--sizes S ...]

For each size, a keras-hub BertBackbone with `dtype="bfloat16"` (random weights, built
offline from its config: hidden size, layers, 16 heads, 4x MLP, 32,000 tokens) is exported as
a SavedModel in a process of its own; then `codegen to-ir` and `codegen build` each run in
a fresh process and their wall time and peak RSS (bench/measure.py) are recorded. A line
fit of peak RSS over the bfloat16 weight bytes gives the slope (0 means memory does not grow
with the model). The table goes to bench/RESULTS.md. Each size's files are deleted before
the next (the largest SavedModel takes about 3.3 GB of disk).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Measurement, run
from results import cell, slope_line, write_section

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# (layers, hidden size): about 0.14, 0.38 and 0.88 billion parameters
SIZES = {"small": (8, 1024), "medium": (12, 1536), "large": (16, 2048)}
EXPORT = r'''
import sys
import keras_hub
layers, hidden, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = keras_hub.models.BertBackbone(
    vocabulary_size=32000, num_layers=layers, num_heads=16, hidden_dim=hidden,
    intermediate_dim=4 * hidden, max_sequence_length=512, dtype="bfloat16")
model.export(out, verbose=False)
print(model.count_params())
'''


def measure_size(work: Path, name: str) -> tuple[int, list[Measurement]]:
    layers, hidden = SIZES[name]
    folder = work / f"bf16_{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    made = subprocess.run([sys.executable, "-c", EXPORT, str(layers), str(hidden),
                           str(folder / "saved")], env=env, check=True, capture_output=True,
                          text=True)
    parameters = int(made.stdout.split()[-1])
    cli = [sys.executable, "-m", "codegen.cli"]
    steps = [("to-ir", ["to-ir", str(folder / "saved"), "-o", str(folder / "ir")]),
             ("build", ["build", str(folder / "ir"), "-o", str(folder / "model")])]
    results = [run(label, cli + args + ["-q"], env=env, log=folder / f"{label}.log")
               for label, args in steps]
    shutil.rmtree(folder)
    return parameters, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    args = parser.parse_args()
    rows = []
    for name in args.sizes:
        print(f"{name}...", flush=True)
        parameters, steps = measure_size(args.work.resolve(), name)
        rows.append((parameters, steps))
        print(f"  {parameters:,} parameters: " + ", ".join(
            f"{m.label} {m.wall:.1f} s / {m.peak_mb:,.0f} MB" for m in steps), flush=True)
    lines = [
        "## Memory against model size: bfloat16 keras-hub BERT SavedModels",
        "",
        ("Peak RSS of each step (fresh process); the weights stay bfloat16 (2 bytes a "
         "parameter). Slope = least-squares fit of peak RSS over weight bytes (0: memory "
         "does not grow with the model)."),
        "",
        "| parameters | bfloat16 weights | to-ir | build |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for parameters, steps in rows:
        lines.append(f"| {parameters:,} | {2 * parameters / 2**30:.2f} GiB | " + " | ".join(
            cell(m) for m in steps) + " |")
    x = [2 * parameters for parameters, _ in rows]
    lines += ["", slope_line(x, [steps for _, steps in rows], ("to-ir", "build"))]
    text = "\n".join(lines) + "\n"
    write_section(BENCH / "RESULTS.md", "bf16_slope.py", text)
    print(text)


if __name__ == "__main__":
    main()
