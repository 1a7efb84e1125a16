"""`codegen inspect`: what a model holds before converting it.

TF models go through the frontend's `load_model` (every format it reads); an IR folder
(graph.json) is read with the IR loader. Both give the same report, and both can be
drawn (`picture.py`); a TF graph can also be written for TensorBoard.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from codegen.frontends.tensorflow.converter import PASSTHROUGH_OPS, STATEFUL_SOURCES
from codegen.ir.graph import Graph

TRAINING_PREFIXES = ("save/", "save_", "init", "report_uninitialized", "gradients/", "Adam",
                     "Momentum", "GradientDescent", "summaries", "global_step")
CONTROL_OPS = {"NoOp", "Assign", "AssignVariableOp", "VarIsInitializedOp", "SaveV2", "RestoreV2",
               "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "Const", "L2Loss",
               "ScalarSummary", "MergeSummary", "Fill", "TruncatedNormal", "RandomUniform"}
OUTPUT_NAMES = ("output", "mmdnn_output", "predictions", "logits", "probs", "softmax")


def is_ir(model: Path) -> bool:
    model = Path(model)
    return model.name == "graph.json" or (model.is_dir() and (model / "graph.json").is_file())


def load_source(model: Path, weights: Path | None = None):
    """The IR graph of an IR folder, else the frontend's TFModel."""
    if is_ir(model):
        from codegen.ir.validate import load_ir

        return load_ir(model.parent if model.name == "graph.json" else model)
    from codegen.frontends.tensorflow.loader import load_model

    return load_model(model, weights, weights_aside=True)  # (large weights stay on disk)


def inspect_model(model: Path, weights: Path | None = None, source=None,
                  outputs: list[str] | None = None) -> dict:
    source = source if source is not None else load_source(model, weights)
    if isinstance(source, Graph):
        return inspect_ir(model, source)
    report = inspect_tf(model, source)
    outputs = outputs or source.outputs  # --dst-node, else a SavedModel/Keras signature's
    if outputs:
        report["conversion"] = conversion_check(source, outputs)
    return report


def conversion_check(tf_model, outputs: list[str]) -> dict:
    """A dry run of `to-ir` for these outputs (nothing written): the ops on the value path
    (shape-only inputs, which conversion reads statically, are not counted) and every
    problem at once, as `to-ir` would report them."""
    from codegen.errors import UnsupportedOpsError
    from codegen.frontends.tensorflow.converter import Converter, find_ops

    converter = Converter(tf_model)
    output_ops = find_ops(tf_model, outputs)
    report = {"outputs": [op.name for op in output_ops], "op_counts": {}, "problems": []}
    try:
        ops = converter.compute_ops(output_ops)
        report["op_counts"] = dict(Counter(op.type for op in ops).most_common())
        converter.convert(output_ops)
    except UnsupportedOpsError as exc:
        report["problems"] = [exc.message, *exc.details]
    return report


def inspect_tf(model: Path, tf_model) -> dict:
    from codegen.frontends.tensorflow.handlers import load_handlers

    ops = tf_model.graph.get_operations()
    consumed = {t.op.name for op in ops for t in op.inputs}
    inputs = [
        {"name": op.name, "dtype": op.outputs[0].dtype.name,
         "shape": op.outputs[0].shape.as_list() if op.outputs[0].shape.rank is not None else None}
        for op in ops if op.type in ("Placeholder", "PlaceholderWithDefault")
        and not op.name.startswith(TRAINING_PREFIXES)
    ]
    sinks = [op for op in ops if op.name not in consumed and op.type not in CONTROL_OPS
             and not op.name.startswith(TRAINING_PREFIXES) and op.outputs
             and "/Regularizer/" not in op.name and op.outputs[0].shape.rank != 0]
    candidates = sorted(sinks, key=lambda op: (_rank(op.name), op.name))
    handlers = load_handlers()
    known = set(handlers) | PASSTHROUGH_OPS | STATEFUL_SOURCES | CONTROL_OPS | {"ReadVariableOp"}
    unsupported: dict[str, list[str]] = {}
    for op in ops:
        if op.type not in known and not op.name.startswith(TRAINING_PREFIXES):
            unsupported.setdefault(op.type, []).append(op.name)
    return {
        "model": str(model),
        "inputs": inputs,
        "outputs": [{"name": op.name, "op": op.type,
                     "shape": op.outputs[0].shape.as_list() if op.outputs[0].shape.rank is not None
                     else None} for op in candidates[:10]],
        "op_counts": dict(Counter(op.type for op in ops).most_common()),
        "variables": len(tf_model.variable_names()),
        "unsupported": {op: names for op, names in sorted(unsupported.items())},
    }


def inspect_ir(model: Path, graph) -> dict:
    """The same report for an IR folder: declared outputs first, then other sinks."""
    read = {ref.rpartition(":")[0] for node in graph.nodes.values() for ref in node.inputs}
    declared = [output.source.rpartition(":")[0] for output in graph.outputs]
    sinks = [name for name in graph.nodes if name not in read and name not in declared]
    ranked = declared + sorted(sinks, key=lambda name: (_rank(name), name))
    return {
        "model": str(model),
        "inputs": [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)}
                   for i in graph.inputs],
        "outputs": [{"name": name, "op": graph.nodes[name].op,
                     "shape": graph.nodes[name].outputs[0].shape} for name in ranked[:10]],
        "op_counts": dict(Counter(node.op for node in graph.nodes.values()).most_common()),
        "variables": len(graph.weights),
        "unsupported": {},  # the IR loader already refused unknown ops
    }


def picture_ops(source) -> list:
    from codegen.tools.picture import ops_from_ir, ops_from_tf

    if isinstance(source, Graph):
        return ops_from_ir(source)
    return ops_from_tf(source.graph, TRAINING_PREFIXES)


def write_tensorboard(source, logdir: Path) -> Path:
    """Write the TF graph as an event file under LOGDIR; returns the file."""
    from codegen.errors import UsageError
    from codegen.frontends.tensorflow.compat import import_tf

    if isinstance(source, Graph):
        raise UsageError("--tensorboard needs a TensorFlow model, not an IR folder")
    tf = import_tf()
    logdir = Path(logdir)
    before = set(logdir.glob("events.out.tfevents.*"))
    with source.graph.as_default():
        writer = tf.compat.v1.summary.FileWriter(str(logdir), graph=source.graph)
        writer.flush()
        writer.close()
    written = sorted(set(logdir.glob("events.out.tfevents.*")) - before)
    return written[-1] if written else logdir


def _rank(name: str) -> int:
    lowered = name.lower().rsplit("/", 1)[-1]
    return OUTPUT_NAMES.index(lowered) if lowered in OUTPUT_NAMES else len(OUTPUT_NAMES)


def print_report(report: dict, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(report, indent=1))
        return
    print(f"model: {report['model']} ({report['variables']} variables)")
    print("inputs:")
    for spec in report["inputs"]:
        print(f"  {spec['name']}: {spec['dtype']} {spec['shape']}")
    print("candidate output nodes (best first; pass one with --dst-node):")
    for spec in report["outputs"]:
        print(f"  {spec['name']} ({spec['op']}): {spec['shape']}")
    print("op counts:")
    for op, count in report["op_counts"].items():
        print(f"  {op}: {count}")
    conversion = report.get("conversion")
    if conversion:
        print(f"ops on the value path of {', '.join(conversion['outputs'])} (what to-ir converts):")
        for op, count in conversion["op_counts"].items():
            print(f"  {op}: {count}")
        if conversion["problems"]:
            print("to-ir would refuse:")
            for line in conversion["problems"]:
                print(f"  {line}")
        return
    if report["unsupported"]:
        print("ops that cannot be converted (only a problem if the outputs need them):")
        for op, names in report["unsupported"].items():
            print(f"  {op} x{len(names)}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
