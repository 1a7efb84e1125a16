"""TF op handlers, one module per op family, registered with `@handler`.

A handler receives a `Context` for one TF operation and emits IR nodes through it.
Registering the same TF op twice is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

FAMILIES = ("activation", "arithmetic", "conv", "norm", "pool", "shape")


@dataclass(frozen=True)
class Handler:
    tf_op: str
    ir_op: str
    convert: Callable


HANDLERS: dict[str, Handler] = {}


def handler(*tf_ops: str, ir: str) -> Callable[[Callable], Callable]:
    """Register `convert(ctx)` for the given TF op types, producing IR op `ir`."""

    def register(convert: Callable) -> Callable:
        for tf_op in tf_ops:
            if tf_op in HANDLERS:
                raise RuntimeError(f"TF op {tf_op} has two handlers")
            HANDLERS[tf_op] = Handler(tf_op, ir, convert)
        return convert

    return register


def load_handlers() -> dict[str, Handler]:
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
    return HANDLERS
