"""Does conversion memory grow with the weights? python bench/memory_slope.py [--sizes 0.5 1 2 4]

For each size (GB of float32 weights) it writes a synthetic TF1 checkpoint: a chain of
dense layers (4096 x 4096 MatMul + BiasAdd + Relu, 64 MiB per kernel), saved variable
by variable (one SaveV2 shard each, then MergeV2Checkpoints) so that the generator never
holds more than one kernel. Then it runs `codegen to-ir`, `build` and `dump` on it, each a
fresh process, records peak RSS (bench/measure.py), fits peak RSS = a + slope * weight bytes
per step (least squares) and writes the table to bench/RESULTS.md. Each size's files are
deleted before the next size (the 4 GB case needs about 17 GB of disk at once).
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
WIDTH = 4096
GENERATOR = r'''
import os, sys
import numpy as np
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

out, layers, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tf1 = tf.compat.v1
graph = tf.Graph()
with graph.as_default():
    x = tf1.placeholder(tf.float32, [None, width], name="input")
    names = []
    for i in range(layers):
        with tf1.variable_scope(f"dense{i}"):
            kernel = tf1.get_variable("kernel", [width, width], use_resource=False)
            bias = tf1.get_variable("bias", [width], use_resource=False)
        x = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, kernel), bias))
        names += [f"dense{i}/kernel", f"dense{i}/bias"]
    tf.identity(x, name="output")
    tf1.train.export_meta_graph(filename=f"{out}/model.ckpt.meta", graph=graph)
rng = np.random.default_rng(0)
shards = []
for i, name in enumerate(names):  # one variable per shard: never more than one in memory
    shape = (width, width) if name.endswith("kernel") else (width,)
    scale = 1.0 / np.sqrt(width) if name.endswith("kernel") else 0.01
    value = (rng.standard_normal(shape, dtype=np.float32) * scale)
    prefix = f"{out}/shard{i}"
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[name], shape_and_slices=[""], tensors=[value])
    shards.append(prefix)
    del value
tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=shards, destination_prefix=f"{out}/model.ckpt",
                              delete_old_dirs=False)
'''


def weight_bytes(layers: int) -> int:
    return layers * (WIDTH * WIDTH + WIDTH) * 4


def measure_size(work: Path, gigabytes: float) -> tuple[int, list[Measurement]]:
    layers = max(1, round(gigabytes * 2**30 / weight_bytes(1)))
    folder = work / f"slope_{gigabytes:g}gb"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "ckpt").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", GENERATOR, str(folder / "ckpt"), str(layers), str(WIDTH)],
                   env=env, check=True)
    cli = [sys.executable, "-m", "codegen.cli"]
    steps = [
        ("to-ir", ["to-ir", str(folder / "ckpt" / "model.ckpt.meta"), "--dst-node", "output",
                   "-o", str(folder / "ir")]),
        ("build", ["build", str(folder / "ir"), "-o", str(folder / "model")]),
        ("dump", ["dump", str(folder / "model"), "-o", str(folder / "model.pth")]),
    ]
    results = [run(label, cli + args + ["-q"], env=env, log=folder / f"{label}.log")
               for label, args in steps]
    shutil.rmtree(folder)
    return weight_bytes(layers), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1, 2, 4], help="GB of weights")
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        print(f"{size:g} GB of weights...", flush=True)
        total, steps = measure_size(args.work.resolve(), size)
        rows.append((total, steps))
        print("  " + ", ".join(f"{m.label} {m.wall:.1f} s / {m.peak_mb:,.0f} MB" for m in steps), flush=True)
    x = [total for total, _ in rows]
    lines = [
        "## Memory against model size (synthetic dense-chain checkpoints)",
        "",
        ("Peak RSS of each step (fresh process) against the bytes of float32 weights; slope = "
        "least-squares fit of peak RSS over weight bytes (target <= 0.25)."),
        "",
        "| weights | to-ir | build | dump |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for total, steps in rows:
        lines.append(f"| {total / 2**30:.2f} GiB | " + " | ".join(
            cell(m) for m in steps) + " |")
    lines += ["", slope_line(x, [steps for _, steps in rows], ("to-ir", "build", "dump"))]
    text = "\n".join(lines) + "\n"
    write_section(BENCH / "RESULTS.md", "memory_slope.py", text)
    print(text)


if __name__ == "__main__":
    main()
