"""`codegen to-ir`: a TF model -> an IR folder (graph.json + weights/*.npy)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from codegen.errors import InvalidIRError, UsageError
from codegen.frontends.tensorflow import saved
from codegen.frontends.tensorflow.bn_decay import DEFAULT_BN_DECAY
from codegen.frontends.tensorflow.converter import Converter, find_ops
from codegen.frontends.tensorflow.loader import load_model
from codegen.ir.graph import Graph
from codegen.ir.validate import semantic_problems
from codegen.ir.weights import WeightEntry, save_array, unique_file_names
from codegen.parallel import ordered_map
from codegen.progress import progress_bar
from codegen.staging import staged_dir


def convert_model(
    model_path: Path,
    weights: Path | None,
    dst_nodes: list[str] | None,
    *,
    bn_decay: float | None = None,
    signature: str = "serving_default",
    inputs: list[str] | None = None,
) -> tuple[Graph, Converter]:
    """Translate the graph (no file written yet); unsupported ops raise first.

    Without `dst_nodes`, the outputs of a SavedModel/Keras signature are used."""
    if bn_decay is not None and not 0.0 <= bn_decay <= 1.0:
        raise UsageError(f"--bn-decay {bn_decay:g}: a decay is between 0 and 1 (Keras' default "
                         "momentum is 0.99, TF-slim's decay 0.997)")
    model = load_model(Path(model_path), weights, signature=signature, only=dst_nodes,
                       weights_aside=True)
    if not dst_nodes and not model.outputs:
        raise UsageError(f"{model_path}: name the output node(s) with --dst-node "
                         "('codegen inspect' lists candidates)")
    converter = Converter(model, bn_decay=bn_decay)  # each BatchNorm's own, unless --bn-decay
    graph = converter.convert(find_ops(model, dst_nodes or model.outputs), inputs)
    graph.source = {
        "framework": "tensorflow",
        "model": Path(model_path).name,
        "weights": Path(model.weights_path).name if model.weights_path else "",
    }
    if bn_decay is not None:
        graph.source["bn_decay"] = bn_decay
    return graph, converter


def bn_note(model_path: Path, graph: Graph, converter: Converter) -> str | None:
    """What `to-ir` assumed for the BatchNorms whose decay the model does not record."""
    norms = [name for name, node in graph.nodes.items() if node.op == "batch_norm"]
    assumed = sum(name in converter.bn_assumed for name in norms)
    if not assumed:
        return None
    total = len(norms)
    path = Path(model_path)
    kind = ("SavedModel" if saved.is_saved_model(path) else "Keras file" if saved.is_keras_file(path)
            else "checkpoint's graph (exported with is_training=False)" if path.suffix == ".meta"
            else "frozen graph")
    layers = f"{assumed} of {total} layers" if assumed < total else (
        "1 layer" if assumed == 1 else f"{assumed} layers")
    return (f"BatchNorm momentum not recorded in this {kind}: assumed TF-slim's decay "
            f"{DEFAULT_BN_DECAY} for {layers}; pass --bn-decay to set it")


def to_ir(
    model_path: Path,
    weights: Path | None,
    dst_nodes: list[str] | None,
    out_dir: Path,
    *,
    bn_decay: float | None = None,
    signature: str = "serving_default",
    inputs: list[str] | None = None,
    quiet: bool = False,
) -> Graph:
    """Write `out_dir/graph.json` and `out_dir/weights/*.npy`, streaming tensor by tensor."""
    graph, converter = convert_model(model_path, weights, dst_nodes, bn_decay=bn_decay,
                                     signature=signature, inputs=inputs)
    for warning in converter.warnings:
        if not quiet:
            print(f"codegen: warning: {warning}", file=sys.stderr)
    with staged_dir(Path(out_dir)) as temp:
        readers: dict[tuple[str, str], list[str]] = {}  # one source -> its IR weights
        for name, source in converter.weight_sources.items():
            readers.setdefault((source.kind, source.key), []).append(name)
        sources = list(readers)
        files = unique_file_names([key for _, key in sources])
        names = converter.source_names
        trainable = {source.key for source in converter.weight_sources.values() if source.trainable}

        def write(item: tuple[tuple[str, str], np.ndarray]) -> WeightEntry:
            (_, key), value = item
            return save_array(temp, key, value, tf_name=key, file_name=files[key],
                              source=names.get(key, ""), trainable=key in trainable)

        # Tensors are read here, one by one, and written (hashed) on worker threads.
        read = ((source, converter.read_source(converter.weight_sources[readers[source][0]]))
                for source in progress_bar(sources, "writing weights", quiet=quiet))
        for source, entry in zip(sources, ordered_map(write, read)):
            for name in readers[source]:
                graph.weights[name] = entry.transformed(
                    *converter.weight_sources[name].transforms)
        problems = semantic_problems(graph)  # what we write must pass our own checks
        if problems:  # (the JSON Schema check runs in `codegen build` and in the tests)
            raise InvalidIRError(f"internal: the IR fails its checks: {problems[0]}", details=problems)
        graph.save(temp)
    note = bn_note(model_path, graph, converter)  # once the IR is written: not before an error
    if note and not quiet:
        print(f"note: {note}", file=sys.stderr)
    return graph
