"""Time one inference engine on ResNet V2 152: python bench/infer.py ENGINE WORK_DIR RUNS.

ENGINE is ours (the generated model.py via load_model(): BatchNorms fused), ours_unfused
(load_model(fused=False): the plain modules, as for fine-tuning), ours_compiled (the same under
torch.compile with Inductor's freezing, an opt-in for inference), tf (a TF session on the
checkpoint), onnx2torch (the model tf2onnx + onnx2torch make) or onnxruntime. Every engine
gets the same input (batch 8, 224x224, seed 0), 2 threads, 3 warm-up runs, then RUNS timed
runs. Prints one JSON line: median and all times in seconds, and where the output went.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

THREADS, BATCH, WARMUP = 2, 8, 3


def nchw_input() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((BATCH, 3, 224, 224)).astype(np.float32)


def engine_ours(work: Path, compiled: bool = False, fused: bool = True):
    import importlib.util

    import torch

    torch.set_num_threads(THREADS)
    spec = importlib.util.spec_from_file_location("generated_model", work / "ours" / "model" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model() if fused else module.load_model(fused=False)
    if compiled:  # Inductor with frozen weights: inference only (the first warm-up run compiles)
        import torch._inductor.config

        torch._inductor.config.freezing = True  # (as a torch.compile option it is not applied)
        model = torch.compile(model)
    x = torch.from_numpy(nchw_input())

    def run():
        with torch.inference_mode():
            return model(x).numpy()
    return run


def engine_ours_unfused(work: Path):
    return engine_ours(work, fused=False)


def engine_ours_compiled(work: Path):
    return engine_ours(work, compiled=True)


def engine_tf(work: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=THREADS,
                                      inter_op_parallelism_threads=1)
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(str(work / "ckpt" / "imagenet_resnet_v2_152.ckpt.meta"),
                                                     clear_devices=True)
        session = tf.compat.v1.Session(graph=graph, config=config)
        saver.restore(session, str(work / "ckpt" / "imagenet_resnet_v2_152.ckpt"))
    x = nchw_input().transpose(0, 2, 3, 1).copy()
    return lambda: session.run("output:0", {"input:0": x})


def engine_onnx2torch(work: Path):
    import onnx2torch
    import torch

    torch.set_num_threads(THREADS)
    model = onnx2torch.convert(str(work / "peers" / "model.onnx")).eval()
    x = torch.from_numpy(nchw_input().transpose(0, 2, 3, 1).copy())

    def run():
        with torch.inference_mode():
            return model(x).numpy()
    return run


def engine_onnxruntime(work: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(work / "peers" / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = nchw_input().transpose(0, 2, 3, 1).copy()
    return lambda: session.run(None, {name: x})[0]


def main() -> None:
    engine, work, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    run = globals()[f"engine_{engine}"](work)
    for _ in range(WARMUP):
        output = run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        output = run()
        times.append(time.perf_counter() - start)
    np.save(work / f"output_{engine}.npy", np.asarray(output).reshape(BATCH, -1))
    print(json.dumps({"engine": engine, "median": statistics.median(times), "times": times}))


if __name__ == "__main__":
    main()
