"""The op support table (TF op -> IR op -> PyTorch) from the handler registry and the IR
op catalogue, for the README: `python -m codegen.tools.support` prints it, `--update FILE`
rewrites the table between the markers in FILE (the README)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

BEGIN, END = "<!-- op-table:begin -->", "<!-- op-table:end -->"

# Patterns recognised on top of the one-op handlers: codegen/frontends/tensorflow/rewrites/
# (one module each, tested in tests/test_rewrites.py), plus the dense-per-pixel IR pass.
PATTERNS = [
    ("`x * m + (beta - mean * m)`, `m = rsqrt(var + eps) * gamma` (Keras 3 BatchNormalization)",
     "batch_norm"),
    (("`x * m + (beta - mean * m)` with `mean`, `m` from `tf.nn.moments` over the last axis "
     "(Keras 3 LayerNormalization)"), "layer_norm"),
    (("`x * rsqrt(mean(x ** 2, -1) + eps) * scale` (Keras RMSNormalization; keras-hub Llama, "
      "T5; `* (1 + scale)`: Gemma)"), "rms_norm"),
    ("`x * sigmoid(x)` (also `x * sigmoid(1.0 * x)`)", "swish"),
    ("`0.5 * x * erfc(-x / sqrt(2))` (tf.nn.gelu)", "gelu"),
    ("`relu6(x + 3) / 6` (Keras hard_sigmoid)", "hard_sigmoid"),
    ("`x * relu6(x + 3) / 6` (Keras hard_swish, MobileNetV3)", "hard_swish"),
    ("reshape `[N, H, W, C]` -> `[N*H*W, C]`, MatMul, reshape back (Dense on a 4-D tensor)",
     "conv2d"),
    (("ExpandDims -> Conv2D -> Squeeze on `[N, T, C]` (Keras Conv1D; SpaceToBatchND / "
      "BatchToSpaceND around it when dilated; DepthwiseConv2dNative -> Conv2D: SeparableConv1D)"),
     "conv1d"),
    ("ExpandDims -> MaxPool -> Squeeze on `[N, T, C]` (Keras MaxPooling1D)", "max_pool1d"),
    ("ExpandDims -> AvgPool -> Squeeze on `[N, T, C]` (Keras AveragePooling1D)", "avg_pool1d"),
    ("ExpandDims -> Conv2DBackpropInput -> Squeeze on `[N, T, C]` (Keras Conv1DTranspose)",
     "conv_transpose1d"),
    ("While loop of a Keras GRU, recognised by its step", "gru"),
    ("While loop of a Keras SimpleRNN (tanh or relu), recognised by its step", "rnn"),
    ("`(0.5 * x) * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x ** 3)))` (tanh GELU, keras-hub)",
     "gelu"),
    ("Einsum of x with a weight, `abc,cde->abde` / `abcd,cde->abe` (+ bias) (Keras EinsumDense)",
     "linear"),
    ("tensordot reshape, MatMul, reshape back on `[N, T, C]` of unknown T (Dense on a sequence)",
     "linear"),
    (("scores einsum (or transposes + BatchMatMul), scale, `where(mask, s, -large)`, softmax, "
      "context einsum (Keras MultiHeadAttention, keras-hub BERT)"), "attention"),
    ("ExpandDims, Tile, Reshape repeating rows then columns (Keras 3 nearest UpSampling2D)",
     "resize"),
    ("Identity, IdentityN, StopGradient, Snapshot, PreventGradient, CheckNumerics", "(passed through)"),
    ("Shape, StridedSlice, Pack, GatherV2, Prod, ConcatV2 feeding a shape operand",
     "(read statically)"),
    # the handlers of GatherV2 and MatMul above, on other operands
    ("GatherV2 of a run-time tensor, of constant ids, on another axis or with batch_dims",
     "gather"),
    ("MatMul of two run-time tensors (transpose_a / transpose_b)", "matmul"),
]


def op_table() -> str:
    from codegen.frontends.tensorflow.handlers import load_handlers
    from codegen.frontends.tensorflow.refused import FAMILIES
    from codegen.resources import op_catalogue

    catalogue = op_catalogue()
    rows = ["| TF op | IR op | PyTorch |", "| --- | --- | --- |"]
    by_ir: dict[str, list[str]] = {}
    for handler in load_handlers().values():
        by_ir.setdefault(handler.ir_op, []).append(handler.tf_op)
    for ir_op in sorted(by_ir):
        tf_ops = ", ".join(sorted(by_ir[ir_op]))
        rows.append(f"| {tf_ops} | `{ir_op}` | {catalogue[ir_op]['pytorch']} |")
    for pattern, ir_op in PATTERNS:
        form = catalogue[ir_op]["pytorch"] if ir_op in catalogue else ""
        rows.append(f"| {pattern} | {ir_op if ir_op.startswith('(') else f'`{ir_op}`'} | {form} |")
    for family in FAMILIES:  # refused at to-ir with this reason (exit 4)
        names = [*family.ops, *(f"{prefix}*" for prefix in family.prefixes)]
        rows.append(f"| {', '.join(names)} | (refused: {family.name}) | {family.reason} |")
    return "\n".join(rows) + "\n"


def update(path: Path) -> bool:
    """Rewrite the table in `path`; True if it changed."""
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers")
    new = pattern.sub(lambda _: f"{BEGIN}\n{op_table()}{END}", text)
    path.write_text(new)
    return new != text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", type=Path, help="rewrite the table in this file")
    args = parser.parse_args()
    if args.update:
        print("updated" if update(args.update) else "unchanged")
    else:
        print(op_table(), end="")


if __name__ == "__main__":
    main()
