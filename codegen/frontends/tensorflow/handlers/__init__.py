"""TF op handlers, one module per op family, registered with `@handler`.

A handler receives a `Context` for one TF operation and emits IR nodes through it.
Registering the same TF op twice is an error. `static` names the inputs a handler reads only
at conversion time (e.g. the shape operand of Reshape, which TF often computes from
`Shape`/`StridedSlice`/`Pack` ops): the converter does not translate what feeds them. It may
be a function of the TF op, for ops whose inputs vary (a while loop's). `reads(op)`, where
given, names the tensors the handler reads instead: a recurrent loop reads the batch-first
sequence and mask behind the transposes and lists Keras puts around them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

FAMILIES = ("activation", "arithmetic", "conv", "embedding", "math", "norm", "pool", "rnn",
            "shape", "einsum", "dynamic", "spectral", "image", "quant", "detection", "slicing",
            "aliases", "gather", "matrix", "sizes", "cells", "control", "counting")


@dataclass(frozen=True)
class Handler:
    tf_op: str
    ir_op: str
    convert: Callable
    static: tuple[int, ...] | Callable = ()
    reads: Callable | None = None  # op -> the tensors it reads, when not (all of) its inputs


HANDLERS: dict[str, Handler] = {}


def handler(*tf_ops: str, ir: str, static: tuple[int, ...] | Callable = (),
            reads: Callable | None = None) -> Callable[[Callable], Callable]:
    """Register `convert(ctx)` for the given TF op types, producing IR op `ir`."""

    def register(convert: Callable) -> Callable:
        for tf_op in tf_ops:
            if tf_op in HANDLERS:
                raise RuntimeError(f"TF op {tf_op} has two handlers")
            HANDLERS[tf_op] = Handler(tf_op, ir, convert, static, reads)
        return convert

    return register


def load_handlers() -> dict[str, Handler]:
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
    return HANDLERS
