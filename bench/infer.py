"""Time one inference engine: python bench/infer.py ENGINE WORK_DIR RUNS [MODEL].

MODEL is resnet_v2_152 (the default), bert_base (below, `bert_*`) or llama (`llama_*`,
bench/llama_speed.py's float32 keras-hub Llama: batch 1, length 128).

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


# -- BERT-base (keras-hub BertBackbone, SavedModel): batch 8, length 128, int32 token_ids,
# segment_ids and padding_mask (bench/bert.py's bench_inputs); the output saved is the
# sequence output and the pooled output, flattened and side by side.
LENGTH = 128


def bert_inputs() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bert import bench_inputs

    return bench_inputs(BATCH, LENGTH)


def _by_rank(outputs) -> np.ndarray:
    """[sequence output (rank 3), pooled output (rank 2)], flattened per example."""
    arrays = sorted((np.asarray(o) for o in outputs), key=lambda a: -a.ndim)
    return np.concatenate([a.reshape(BATCH, -1) for a in arrays], axis=1)


def bert_ours(work: Path, compiled: bool = False):
    import importlib.util

    import torch

    torch.set_num_threads(THREADS)
    spec = importlib.util.spec_from_file_location("generated_model", work / "ours" / "model" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()
    if compiled:
        # dynamic=True: one compiled model for every batch and length; with sizes unknown,
        # Inductor also runs each nn.Linear through oneDNN, the GELU fused into it
        import torch._inductor.config

        torch._inductor.config.freezing = True
        model = torch.compile(model, dynamic=True)
    feeds = {name: torch.from_numpy(value) for name, value in bert_inputs().items()}

    def run():
        with torch.inference_mode():
            return [t.numpy() for t in model(**feeds)]
    return run


def bert_ours_compiled(work: Path):
    return bert_ours(work, compiled=True)


def bert_tf(work: Path):
    """The SavedModel's serving_default signature (what both converters read)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    function = tf.saved_model.load(str(work / "bert_base")).signatures["serving_default"]
    feeds = {name: tf.constant(value) for name, value in bert_inputs().items()}
    return lambda: [v.numpy() for v in function(**feeds).values()]


def bert_onnx2torch(work: Path):
    import onnx2torch
    import torch

    torch.set_num_threads(THREADS)
    model = onnx2torch.convert(str(work / "peers" / "model.onnx")).eval()
    import onnx

    names = [i.name for i in onnx.load(str(work / "peers" / "model.onnx"), load_external_data=False).graph.input]
    feeds = bert_inputs()
    args = [torch.from_numpy(feeds[name.split(":")[0]]) for name in names]

    def run():
        with torch.inference_mode():
            return [t.numpy() for t in model(*args)]
    return run


def bert_onnxruntime(work: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(work / "peers" / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    feeds = bert_inputs()
    feeds = {i.name: feeds[i.name.split(":")[0]] for i in session.get_inputs()}
    return lambda: session.run(None, feeds)


# -- a float32 keras-hub LlamaBackbone (bench/llama_speed.py makes it in WORK/saved):
# batch 1, length 128, token ids (seed 0) and a padding mask of ones; the sequence output.
LLAMA_BATCH = 1


def llama_inputs() -> dict:
    rng = np.random.default_rng(0)
    return {"token_ids": rng.integers(1, 32000, (LLAMA_BATCH, LENGTH)).astype(np.int32),
            "padding_mask": np.ones((LLAMA_BATCH, LENGTH), np.int32)}


def llama_ours(work: Path, compiled: bool = False):
    import importlib.util

    import torch

    torch.set_num_threads(THREADS)
    spec = importlib.util.spec_from_file_location("generated_model", work / "ours" / "model" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()
    if compiled:  # README's path for sequence models: freezing, dynamic=True
        import torch._inductor.config

        torch._inductor.config.freezing = True
        model = torch.compile(model, dynamic=True)
    feeds = {name: torch.from_numpy(value) for name, value in llama_inputs().items()}

    def run():
        with torch.inference_mode():
            return model(**feeds).numpy()
    return run


def llama_ours_compiled(work: Path):
    return llama_ours(work, compiled=True)


def llama_tf(work: Path):
    """The SavedModel's serving_default signature (what codegen reads)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    function = tf.saved_model.load(str(work / "saved")).signatures["serving_default"]
    feeds = {name: tf.constant(value) for name, value in llama_inputs().items()}
    return lambda: next(iter(function(**feeds).values())).numpy()


PREFIX = {"resnet_v2_152": "engine", "bert_base": "bert", "llama": "llama"}


def main() -> None:
    engine, work, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    model = sys.argv[4] if len(sys.argv) > 4 else "resnet_v2_152"
    run = globals()[f"{PREFIX[model]}_{engine}"](work)
    flat = _by_rank if model == "bert_base" else np.asarray  # (outside the timed calls)
    for _ in range(WARMUP):
        output = run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        output = run()
        times.append(time.perf_counter() - start)
    output = flat(output)
    np.save(work / f"output_{engine}.npy", output.reshape(output.shape[0], -1))
    print(json.dumps({"engine": engine, "median": statistics.median(times), "times": times}))


if __name__ == "__main__":
    main()
