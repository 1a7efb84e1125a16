"""The renderers' shared vocabulary: `Layer`, `Expr`, the `@renderer` registry and the
small value helpers every op family uses.

Op family modules (conv_ops.py, sequence_ops.py, ...) import from here, and ops.py imports
them all to register their renderers, so no module of the backend imports one that imports
it back (tests/test_architecture.py checks that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codegen.ir.graph import Graph, Node

NUM_BATCHES = "num_batches_tracked"  # state entry filled with int64 0
# a cast to each dtype as a tensor method (`x.int()`)
CAST_METHODS = {"bool": "bool", "uint8": "byte", "int8": "char", "int16": "short", "int32": "int",
                "int64": "long", "float16": "half", "bfloat16": "bfloat16", "float32": "float",
                "float64": "double"}
TORCH_DTYPES = {"bool": "torch.bool", "float32": "torch.float32", "int32": "torch.int32",
                "int64": "torch.int64"}
FORM_KEYS = ("form", "operator")  # catalogue text a template writes as it is (never model data)


@dataclass
class Layer:
    template: str
    cls: str  # the class the template instantiates (part of the structure)
    args: dict[str, Any]  # constructor values; may become class parameters
    state: dict[str, str]  # state_dict suffix -> IR weight name (or NUM_BATCHES)
    hint: str  # attribute name when the scope gives none
    helpers: tuple[str, ...] = ()
    # a module that returns several tensors (nn.LSTM): how the call's result unpacks into
    # names ("{0}, ({1}, {2})"), how each output is read from its name, and name suffixes
    unpack: str = ""
    outputs: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    call: str = ""  # the call's arguments from the inputs ("{0}, ({1}[None], {2}[None])")
    output_names: tuple[str, ...] = ()  # the unpacked outputs' names, if not the layer's


@dataclass
class Expr:
    template: str
    attrs: dict[str, Any] = field(default_factory=dict)  # fixed: part of the structure
    hint: str = "x"
    helpers: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    repeat: bool = False  # cheap and pure (`x.shape`): written at each use, never named
    output_names: tuple[str, ...] = ()  # names of its outputs, if not the hint's


RENDERERS: dict[str, Callable[[Node, Graph], Layer | Expr]] = {}


def renderer(*ops: str) -> Callable:
    def register(function: Callable) -> Callable:
        for op in ops:
            if op in RENDERERS:
                raise RuntimeError(f"IR op {op} has two renderers")
            RENDERERS[op] = function
        return function

    return register


BUFFERS = ("running_mean", "running_var", NUM_BATCHES)  # state entries that are not parameters


def render_op(node: Node, graph: Graph) -> Layer | Expr:
    """The node's PyTorch form; a layer whose parameters the source does not all train (a
    Keras layer with trainable=False, BatchNormalization(center=False)) lists those in
    args["untrained"], where the IR says what is trainable."""
    render = RENDERERS[node.op](node, graph)
    if isinstance(render, Layer) and render.cls not in ("Constant", "Learned", "RotaryEmbedding", "AlibiBias") \
            and render.template != "ops/rnn.py.jinja" \
            and any(entry.trainable for entry in graph.weights.values()):  # (RNN: one_bias)
        fixed = tuple(key for key, weight in render.state.items()
                      if key not in BUFFERS and not graph.weights[weight].trainable)
        if fixed:
            render.args["untrained"] = fixed
            render.helpers = (*render.helpers, "untrained")
    return render


def _float(value: float) -> float:
    """A float32 attribute as the short literal a person would write (1e-05)."""
    return float(str(np.float32(value)))


def _pair(values: list[int]) -> int | tuple[int, int]:
    return values[0] if values[0] == values[1] else tuple(values)


def _symmetric(pads: list[list[int]]) -> bool:
    return all(before == after for before, after in pads)


def _torch_pad(pads: list[list[int]]) -> tuple[int, ...]:
    """[[top, bottom], [left, right]] -> F.pad's (left, right, top, bottom)."""
    return tuple(value for pair in reversed(pads) for value in pair)


class SliceIndex(tuple):
    """Per-axis (start, stop, step); its repr is the index text, e.g. `:, :, 1:-1, 1:-1`.

    Only ints and None reach the text, so it is as safe as any other repr'd value."""

    def __repr__(self) -> str:
        parts = []
        for start, stop, step in self:
            text = ":".join("" if v is None else str(int(v)) for v in (start, stop))
            parts.append(text + (f":{int(step)}" if step != 1 else ""))
        while len(parts) > 1 and parts[-1] == ":":
            parts.pop()  # trailing full slices are implied
        return ", ".join(parts)
