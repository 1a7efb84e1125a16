"""The generated Llama against TF: python bench/llama_speed.py [--runs 24] [--processes 4]

A float32 keras-hub LlamaBackbone of a small but real shape (4 layers, hidden 1024, 16 heads
of 64, 4 key/value heads, MLP 2816, 32,000 tokens; 117 M parameters, random weights under
`keras.utils.set_random_seed(0)`, built offline from its constructor) is exported as a
SavedModel (cached in WORK/llama_speed/saved) and converted with `codegen to-ir` + `build`.
Then bench/run.py's inference timing (bench/infer.py's `llama_*` engines): batch 1,
length 128, 2 threads, each engine in fresh processes taking turns, 3 warm-up runs each:

- ours: the generated model.py, load_model();
- ours_compiled: the same under README's path for sequence models,
  torch._inductor.config.freezing = True; torch.compile(model, dynamic=True);
- tf: the SavedModel's serving_default signature.

Bar (issue 21): load_model() at most 1.05x TF's time, the compiled model faster than TF.
The table goes to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section
from run import compile_codegen, report_inference, time_inference

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CONFIG = {"vocabulary_size": 32000, "num_layers": 4, "num_query_heads": 16, "num_key_value_heads": 4,
          "hidden_dim": 1024, "intermediate_dim": 2816}
EXPORT = r'''
import json, shutil, sys
import keras, keras_hub
config, out = json.loads(sys.argv[1]), sys.argv[2]
keras.utils.set_random_seed(0)
model = keras_hub.models.LlamaBackbone(**config)
shutil.rmtree(out + ".partial", ignore_errors=True)
model.export(out + ".partial", verbose=False)
shutil.move(out + ".partial", out)  # a cached folder is always complete
print(model.count_params())
'''
ENGINES = ("ours", "ours_compiled", "tf")


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def prepare(work: Path) -> None:
    import json

    if not (work / "saved" / "saved_model.pb").is_file():
        print("making the float32 Llama SavedModel...", flush=True)
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", EXPORT, json.dumps(CONFIG), str(work / "saved")],
                       env=env(), check=True)
    if not (work / "ours" / "model" / "model.py").is_file():
        print("converting it with codegen...", flush=True)
        cli = [sys.executable, "-m", "codegen.cli"]
        subprocess.run(cli + ["to-ir", str(work / "saved"), "-o", str(work / "ours" / "ir"), "-q"],
                       env=env(), check=True)
        subprocess.run(cli + ["build", str(work / "ours" / "ir"), "-o", str(work / "ours" / "model"), "-q"],
                       env=env(), check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    parser.add_argument("--runs", type=int, default=24, help="timed runs per engine")
    parser.add_argument("--processes", type=int, default=4, help="processes per engine")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    work = args.work.resolve() / "llama_speed"
    prepare(work)
    compile_codegen()
    engines = tuple(args.engines.split(","))
    inference = time_inference(work, None, args.runs, args.processes, engines, "llama")
    shape = ", ".join(f"{k} {v:,}" for k, v in CONFIG.items())
    text = (f"`python bench/llama_speed.py`: keras-hub LlamaBackbone, float32 ({shape}), "
            f"load average at the end {os.getloadavg()[0]:.1f} (2 cores, shared).\n\n"
            + report_inference(inference, args.runs, args.processes, "llama"))
    if not args.no_write:
        write_section(BENCH / "RESULTS.md", "llama_speed.py", text)
    print(text)


if __name__ == "__main__":
    main()
