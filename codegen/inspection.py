"""`codegen inspect`: what a model holds before converting it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from codegen.frontends.tensorflow.converter import PASSTHROUGH_OPS, STATEFUL_SOURCES

TRAINING_PREFIXES = ("save/", "save_", "init", "report_uninitialized", "gradients/", "Adam",
                     "Momentum", "GradientDescent", "summaries", "global_step")
CONTROL_OPS = {"NoOp", "Assign", "AssignVariableOp", "VarIsInitializedOp", "SaveV2", "RestoreV2",
               "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "Const", "L2Loss",
               "ScalarSummary", "MergeSummary", "Fill", "TruncatedNormal", "RandomUniform"}
OUTPUT_NAMES = ("output", "mmdnn_output", "predictions", "logits", "probs", "softmax")


def inspect_model(model: Path, weights: Path | None = None) -> dict:
    from codegen.frontends.tensorflow.handlers import load_handlers
    from codegen.frontends.tensorflow.loader import load_model

    tf_model = load_model(model, weights)
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
    if report["unsupported"]:
        print("ops that cannot be converted (only a problem if the outputs need them):")
        for op, names in report["unsupported"].items():
            print(f"  {op} x{len(names)}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
