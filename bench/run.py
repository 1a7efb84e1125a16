"""codegen vs tf2onnx + onnx2torch on TF-slim ResNet V2 152 (or BERT-base), in one run.

    python bench/run.py [--model resnet_v2_152|bert_base] [--runs 16] [--processes 4] [--work bench/work]

--model bert_base: keras-hub's BertBackbone at BERT-base size (110 M parameters) with
deterministic random weights, exported as a SavedModel whose sequence length is unknown
(bench/bert.py; cached in WORK/bert/); the same steps, tf2onnx reading the SavedModel
(--opset 17); inference at batch 8, length 128, the generated model also under
torch.compile(dynamic=True) with Inductor's freezing (the documented path to TF's speed; each
of its processes compiles first, ~30 s). Its section of RESULTS.md is its own.

1. makes (or reuses) the checkpoint with `codegen extract resnet_v2_152 --random-weights`;
2. makes (or reuses) bench/.venv for the peers: tf2onnx, onnx, onnxruntime and onnx2torch
   (pinned in bench/requirements-peers.txt) on top of this Python's torch and TensorFlow
   (--system-site-packages, so no second, CUDA, torch). onnx2torch is installed with
   --no-deps: it imports torchvision only for its NMS / RoIAlign converters, so the venv
   gets a stub `torchvision` that raises if those are ever used;
3. converts: `codegen to-ir` + `build` + `dump`, then tf2onnx + onnx2torch, each step a
   fresh process, measuring wall time and peak RSS of the process tree (bench/measure.py);
   --repeat rounds (default 3), the two pipelines taking turns; each step's median wall
   time and largest peak are reported, so a shared machine's moods fall on both alike;
4. times inference (bench/infer.py): the generated model via load_model(), TF, the
   onnx2torch model and onnxruntime, batch 8, 2 threads, median of --runs after warm-up,
   spread over --processes fresh processes per engine, the engines taking turns (one
   process of the same model can sit 10% above or below another, so one is not enough);
5. writes bench/RESULTS.md (the conversion section; bench/memory_slope.py adds its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Measurement, run
from results import write_section

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CKPT = "imagenet_resnet_v2_152.ckpt"
STUB = '''"""Stub: onnx2torch imports torchvision only for NMS and RoIAlign (not used here)."""
__version__ = "0.0+stub"
'''
STUB_OPS = '''def _missing(*args, **kwargs):
    raise NotImplementedError("torchvision stub of codegen's bench: detection ops are not available")


nms = box_convert = roi_align = _missing
'''


def codegen_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def ensure_checkpoint(work: Path) -> None:
    if (work / "ckpt" / f"{CKPT}.index").is_file():
        return
    print("making the ResNet V2 152 checkpoint (about a minute)...", flush=True)
    subprocess.run([sys.executable, "-m", "codegen.cli", "extract", "resnet_v2_152",
                    "--random-weights", "-o", str(work / "ckpt"), "-q"],
                   env=codegen_env(), check=True)


def ensure_bert(work: Path) -> None:
    if (work / "bert_base" / "saved_model.pb").is_file():
        return
    print("making the BERT-base SavedModel (about half a minute)...", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(BENCH / "bert.py"), str(work / "bert_base")],
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)


def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    marker = path / ".codegen-bench-ready"
    if marker.is_file():
        return python
    print(f"making {path} for tf2onnx / onnx2torch / onnxruntime...", flush=True)
    venv.EnvBuilder(system_site_packages=True, with_pip=True, clear=True).create(path)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pins = [line.split("#")[0].strip() for line in (BENCH / "requirements-peers.txt").read_text().splitlines()]
    pins = [p for p in pins if p]
    no_deps = [p for p in pins if p.startswith("onnx2torch")]
    subprocess.run(pip + [p for p in pins if p not in no_deps], check=True)
    subprocess.run(pip + ["--no-deps"] + no_deps, check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "torchvision" / "ops").mkdir(parents=True, exist_ok=True)
    (site / "torchvision" / "__init__.py").write_text(STUB + "from torchvision import ops  # noqa\n")
    (site / "torchvision" / "ops" / "__init__.py").write_text(STUB_OPS)
    check = "import torch, onnx2torch, tf2onnx, onnxruntime; assert '+cpu' in torch.__version__, torch.__version__"
    subprocess.run([str(python), "-c", check], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    marker.write_text("ok\n")
    return python


def compile_codegen() -> None:
    """Byte-compile codegen as an install does (an environment with PYTHONDONTWRITEBYTECODE
    would otherwise make every step compile codegen's modules again; the peers' modules
    were compiled when pip installed them)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "codegen")], check=True)


def convert_ours(work: Path, model: str = "resnet_v2_152") -> list[Measurement]:
    out = work / "ours"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cli = [sys.executable, "-m", "codegen.cli"]
    source = ([str(work / "bert_base")] if model == "bert_base" else
              [str(work / "ckpt" / f"{CKPT}.meta"), "-w", str(work / "ckpt" / CKPT), "--dst-node", "output"])
    steps = [
        ("codegen to-ir", ["to-ir", *source, "-o", str(out / "ir")]),
        ("codegen build", ["build", str(out / "ir"), "-o", str(out / "model")]),
        ("codegen dump", ["dump", str(out / "model"), "-o", str(out / "model.pth")]),
    ]
    return [run(label, cli + args + ["-q"], env=codegen_env(), log=out / f"{args[0]}.log")
            for label, args in steps]


def convert_peers(work: Path, python: Path, model: str = "resnet_v2_152") -> list[Measurement]:
    out = work / "peers"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    if model == "bert_base":
        tf2onnx = [str(python), "-m", "tf2onnx.convert", "--saved-model", str(work / "bert_base"),
                   "--opset", "17", "--output", str(out / "model.onnx")]
    else:
        tf2onnx = [str(python), "-m", "tf2onnx.convert", "--checkpoint", str(work / "ckpt" / f"{CKPT}.meta"),
                   "--inputs", "input:0", "--outputs", "output:0", "--output", str(out / "model.onnx")]
    to_torch = [str(python), "-c", ("import sys, onnx2torch, torch; "
                "torch.save(onnx2torch.convert(sys.argv[1]).state_dict(), sys.argv[2])"),
                str(out / "model.onnx"), str(out / "model.pth")]
    return [run("tf2onnx", tf2onnx, env=env, log=out / "tf2onnx.log"),
            run("onnx2torch", to_torch, env=env, log=out / "onnx2torch.log")]


ENGINES = ("ours", "ours_unfused", "tf", "onnx2torch", "onnxruntime", "ours_compiled")
BERT_ENGINES = ("ours", "ours_compiled", "tf", "onnx2torch", "onnxruntime")


def time_inference(work: Path, python: Path | None, runs: int, rounds: int,
                   engines: tuple[str, ...] = ENGINES, model: str = "resnet_v2_152") -> list[dict]:
    """Each engine in its own process, the engines taking turns for `rounds` rounds (a shared
    machine's load then falls on all of them alike); median over all timed runs, and the
    lowest and highest median of one process."""
    per_process: dict[str, list[float]] = {engine: [] for engine in engines}
    per_round = -(-runs // rounds)
    times: dict[str, list[float]] = {engine: [] for engine in engines}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "2"}
    for _ in range(rounds):
        for engine in engines:
            exe = sys.executable if engine in ("ours", "ours_unfused", "tf", "ours_compiled") \
                else str(python)
            done = subprocess.run([exe, str(BENCH / "infer.py"), engine, str(work), str(per_round), model],
                                  env=env, check=False, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"inference of {engine} failed:\n{done.stderr[-3000:]}")
            times[engine] += json.loads(done.stdout.strip().splitlines()[-1])["times"]
            per_process[engine].append(float(np.median(times[engine][-per_round:])))
    tf_out = np.load(work / "output_tf.npy")
    results = []
    for engine in engines:
        output = np.load(work / f"output_{engine}.npy")
        results.append({"engine": engine, "median": float(np.median(times[engine])), "runs": len(times[engine]),
                        "spread": (min(per_process[engine]), max(per_process[engine])),
                        "rel_error": float(np.abs(output - tf_out).max() / np.abs(tf_out).max())})
        print(f"  {engine}: median {results[-1]['median'] * 1000:.0f} ms", flush=True)
    return results


TITLES = {
    "resnet_v2_152": ("## Conversion: TF-slim ResNet V2 152 checkpoint -> PyTorch weights",
                      "batch 8, 224x224, float32", "TensorFlow session (checkpoint)"),
    "bert_base": (("## Conversion: keras-hub BERT-base SavedModel (110 M parameters, length unknown) "
                   "-> PyTorch weights"), "batch 8, length 128, int32 ids (a quarter padded)",
                  "TensorFlow SavedModel (serving_default)"),
    "llama": ("## Conversion: (not measured here)", "float32 keras-hub Llama, batch 1, length 128",
              "TensorFlow SavedModel (serving_default)"),  # bench/llama_speed.py
}


def report(ours: list[Measurement], peers: list[Measurement], inference: list[dict], runs: int,
           repeat: int, processes: int, model: str = "resnet_v2_152") -> str:
    title, case, tf_name = TITLES[model]
    ours_wall, peers_wall = sum(m.wall for m in ours), sum(m.wall for m in peers)
    ours_peak, peers_peak = max(m.peak for m in ours), max(m.peak for m in peers)
    lines = [
        title,
        "",
        (f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, load average at the end {os.getloadavg()[0]:.1f} "
        "(the machine is shared: timings move with it). Each step is a fresh process; "
        f"wall time = median of {repeat} rounds (the two pipelines taking turns), peak = largest peak RSS "
        "of its process tree (sampled every 10 ms, at least wait4's ru_maxrss)."),
        "",
        "| step | wall time | peak RSS |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {m.label} | {m.wall:.2f} s | {m.peak_mb:,.0f} MB |" for m in ours + peers]
    lines += [
        "",
        "| pipeline | wall time | peak RSS (max over steps) |",
        "| --- | ---: | ---: |",
        f"| codegen to-ir + build + dump | {ours_wall:.2f} s | {ours_peak / 2**20:,.0f} MB |",
        f"| tf2onnx + onnx2torch | {peers_wall:.2f} s | {peers_peak / 2**20:,.0f} MB |",
        f"| **ratio codegen / peers** | **{ours_wall / peers_wall:.3f}x** | **{ours_peak / peers_peak:.3f}x** |",
        "",
        (f"## Inference: {case}, 2 threads, median of {runs} runs ({processes} "
         "processes per engine, the engines taking turns, each process after 3 warm-up runs)"),
        "",
        "| engine | median | vs TF | one process's median: lowest - highest | max abs diff / max abs TF |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    tf_time = next(r["median"] for r in inference if r["engine"] == "tf")
    names = {"ours": "codegen model.py, load_model()" + (" (BatchNorms fused)" if model == "resnet_v2_152" else ""),
             "ours_unfused": "codegen model.py, load_model(fused=False) (plain modules)",
             "tf": tf_name,
             "ours_compiled": ("codegen model.py, torch.compile(dynamic=True, freezing)" if model != "resnet_v2_152"
                               else "codegen model.py, torch.compile(freezing)") + " (opt-in, inference only)",
             "onnx2torch": "onnx2torch model (eager)", "onnxruntime": "onnxruntime (CPU EP)"}
    for r in inference:
        low, high = r["spread"]
        lines.append(f"| {names[r['engine']]} | {r['median'] * 1000:.0f} ms | {r['median'] / tf_time:.2f}x "
                     f"| {low * 1000:.0f} - {high * 1000:.0f} ms | {r['rel_error']:.1e} |")
    medians = {r["engine"]: r["median"] for r in inference}
    peers = {e: t for e, t in medians.items() if not e.startswith("ours")}
    for engine, label in (("ours", "codegen's model, load_model()"),
                          ("ours_compiled", "the same under torch.compile")):
        if engine in medians:
            lines += ["", f"{label} relative to: " + ", ".join(
                f"{names[e].split(' (')[0]} {medians[engine] / t:.2f}x" for e, t in peers.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=tuple(TITLES), default="resnet_v2_152",
                        help="resnet_v2_152 (TF-slim checkpoint, the default) or bert_base "
                             "(keras-hub SavedModel, work in WORK/bert/)")
    parser.add_argument("--work", type=Path, default=BENCH / "work", help="checkpoint and outputs")
    parser.add_argument("--venv", type=Path, default=BENCH / ".venv", help="the peers' environment")
    parser.add_argument("--runs", type=int, default=16, help="timed inference runs per engine")
    parser.add_argument("--processes", type=int, default=4,
                        help="inference processes per engine (the runs are spread over them)")
    parser.add_argument("--repeat", type=int, default=3, help="conversion rounds (median reported)")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--engines", default=None,
                        help=f"inference engines, comma-separated (default: all: {','.join(ENGINES)}; "
                             f"for bert_base: {','.join(BERT_ENGINES)})")
    parser.add_argument("--inference-only", action="store_true",
                        help="no conversion rounds (codegen converts once, untimed, if needed); "
                             "with --engines ours,ours_unfused,tf no peers' environment is needed")
    args = parser.parse_args()
    model = args.model
    bert = model == "bert_base"
    work = args.work.resolve() / ("bert" if bert else "")
    known = tuple(e for e in ENGINES if e != "ours_unfused") if bert else ENGINES
    engines = tuple(e for e in (args.engines or ",".join(BERT_ENGINES if bert else ENGINES)).split(",") if e)
    if set(engines) - set(known) or "tf" not in engines:
        raise SystemExit(f"--engines: a comma-separated choice of {', '.join(known)}, "
                         "with tf (every figure is relative to it)")
    ensure_bert(work) if bert else ensure_checkpoint(work)
    compile_codegen()
    owner = "run.py" + (f" --model {model}" if bert else "")
    if args.inference_only:
        if not (work / "ours" / "model" / "model.py").is_file():
            convert_ours(work, model)
        peers_needed = {"onnx2torch", "onnxruntime"} & set(engines)
        python = ensure_venv(args.venv.resolve()) if peers_needed else None
        inference = time_inference(work, python, args.runs, args.processes, engines, model)
        text = report_inference(inference, args.runs, args.processes, model)
        write_section(BENCH / "RESULTS.md", owner + " --inference-only", text)
        print(text)
        return
    python = ensure_venv(args.venv.resolve())
    ours_runs, peers_runs = [], []
    for round_ in range(1, args.repeat + 1):
        print(f"round {round_}/{args.repeat}: converting with codegen...", flush=True)
        ours_runs.append(convert_ours(work, model))
        print(f"round {round_}/{args.repeat}: converting with tf2onnx + onnx2torch...", flush=True)
        peers_runs.append(convert_peers(work, python, model))
        for m in ours_runs[-1] + peers_runs[-1]:
            print(f"  {m.label}: {m.wall:.2f} s, {m.peak_mb:,.0f} MB", flush=True)
    ours, peers = median_steps(ours_runs), median_steps(peers_runs)
    inference = []
    if not args.skip_inference:
        print("timing inference...", flush=True)
        inference = time_inference(work, python, args.runs, args.processes, engines, model)
    text = (report(ours, peers, inference, args.runs, args.repeat, args.processes, model) if inference
            else report_conversion_only(ours, peers, args.repeat, model))
    write_section(BENCH / "RESULTS.md", owner, text)
    print(text)


def median_steps(runs: list[list[Measurement]]) -> list[Measurement]:
    """Per step: the median wall time over the rounds and the largest peak RSS."""
    return [Measurement(steps[0].label, statistics.median(m.wall for m in steps), max(m.peak for m in steps))
            for steps in zip(*runs)]


def report_inference(inference: list[dict], runs: int, processes: int,
                     model: str = "resnet_v2_152") -> str:
    """The inference table alone (`--inference-only`)."""
    text = report([Measurement("-", 1.0, 1)], [Measurement("-", 1.0, 1)], inference, runs, 1,
                  processes, model)
    return "## Inference" + text.split("## Inference", 1)[1]


def report_conversion_only(ours, peers, repeat: int, model: str = "resnet_v2_152") -> str:
    return report(ours, peers, [{"engine": "tf", "median": 1.0, "rel_error": 0.0, "spread": (1.0, 1.0)}],
                  0, repeat, 0, model).split("## Inference")[0]


if __name__ == "__main__":
    main()
