"""Multi-node patterns: layers that TF writes out as several ops, recognised by their
structure (never by name) and emitted as one IR op, before the one-op handlers run.

Each module holds one pattern and registers its matcher with `@rewrite(*anchor TF ops)`:
`match(ctx) -> bool` looks at the op that ends the pattern (`ctx`, the same `Context` the
handlers get) and, on a match, emits the IR op and returns True; otherwise the op's handler
converts it as usual. Matchers are tried in the order of MODULES. A pattern whose anchor
reads other tensors than its inputs registers `reads(op) -> tensors | None` with it: the
converter then needs only those (the rest of the pattern is never converted).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

MODULES = ("batch_norm", "layer_norm", "rms_norm", "swish", "gelu", "hard_swish", "dilated_conv", "conv1d",
           "tensordot", "einsum_dense", "attention", "grouped_attention", "rnn_outputs", "one_hot_embedding", "time_distributed",
           "time_distributed_reshape", "repeat", "rotary", "position_bucket", "alibi")

REWRITES: dict[str, list[Callable]] = {}  # anchor TF op -> matchers, in MODULES order
READS: dict[str, list[Callable]] = {}  # anchor TF op -> op -> the tensors it reads, or None


def rewrite(*tf_ops: str, reads: Callable | None = None) -> Callable[[Callable], Callable]:
    """Register `match(ctx) -> bool` for patterns that end in one of `tf_ops`."""

    def register(match: Callable) -> Callable:
        for tf_op in tf_ops:
            REWRITES.setdefault(tf_op, []).append(match)
            if reads is not None:
                READS.setdefault(tf_op, []).append(reads)
        return match

    return register


def load_rewrites() -> dict[str, list[Callable]]:
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return REWRITES
