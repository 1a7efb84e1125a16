"""One renderer per IR op family: the logic that picks a PyTorch form for a node.

A renderer returns either a `Layer` (an nn.Module attribute with weights, e.g. nn.Conv2d)
or an `Expr` (an expression in `forward`, e.g. F.relu). The text itself lives in the
op family's template (`TEMPLATE`), which has an `init(args)` and/or `forward(x, args)`
macro. Constructor arguments that differ between instances of one class become class
parameters, so Layers list theirs in `args` (Python values, rendered with repr).
"""

from __future__ import annotations

import re
from typing import Any

from codegen.backends.pytorch.registry import (  # noqa: F401 - the vocabulary, re-exported
    BUFFERS,
    FORM_KEYS,
    NUM_BATCHES,
    RENDERERS,
    Expr,
    Layer,
    SliceIndex,
    _float,
    _pair,
    _symmetric,
    _torch_pad,
    render_op,
    renderer,
)
from codegen.ir.graph import Graph, Node
from codegen.ir.passes.layout import LayoutPass
from codegen.resources import op_catalogue


# -- layers ------------------------------------------------------------------------------
@renderer("linear")
def linear(node: Node, graph: Graph) -> Layer:
    out_features, in_features = graph.weights[node.weights["kernel"]].out_shape
    state = {"weight": node.weights["kernel"]}
    if "bias" in node.weights:
        state["bias"] = node.weights["bias"]
    args = {"in_features": in_features, "out_features": out_features, "bias": "bias" in state}
    return Layer("ops/linear.py.jinja", "nn.Linear", args, state, "fc")


@renderer("embedding")
def embedding(node: Node, graph: Graph) -> Layer:
    num_embeddings, embedding_dim = graph.weights[node.weights["table"]].out_shape
    args = {"num_embeddings": num_embeddings, "embedding_dim": embedding_dim}
    return Layer("ops/embedding.py.jinja", "nn.Embedding", args, {"weight": node.weights["table"]},
                 "embedding")


RNN_CLASSES = {"lstm": "nn.LSTM", "gru": "nn.GRU", "rnn": "nn.RNN"}


@renderer(*RNN_CLASSES)
def recurrent(node: Node, graph: Graph) -> Layer:
    """One batch-first layer. PyTorch returns (sequence, h) or (sequence, (h, c)), each
    state with a leading layer axis: `unpack` spells that, `outputs` reads each IR output."""
    weights = node.weights
    input_size = graph.weights[weights["weight_ih"]].out_shape[1]
    one_bias = node.attrs.get("one_bias", False)
    args = {"input_size": input_size, "hidden_size": node.attrs["hidden_size"],
            "bias": "bias_ih" in weights, "one_bias": one_bias,
            "nonlinearity": node.attrs.get("nonlinearity", "tanh")}
    state = {f"{role}_l0": weights[role] for role in ("weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh") if role in weights}
    lstm = node.op == "lstm"
    unpack = "{0}, ({1}, {2})" if lstm else "{0}, {1}"
    cls, helpers = RNN_CLASSES[node.op], ("one_bias",) if one_bias else ()
    if node.op == "gru" and not node.attrs.get("reset_after", True):
        cls, helpers = "GRUResetBefore", ("GRUResetBefore",)  # a cell nn.GRU does not have
    args["masked"] = node.attrs.get("masked", len(node.inputs) == 2)  # Masked(rnn): skips
    if args["masked"]:  # the steps the mask hides
        helpers += ("Masked",)
        state = {f"rnn.{key}": value for key, value in state.items()}
    call = ""
    if node.attrs.get("initial_state"):  # PyTorch's states have a leading layer axis
        first = 2 if args["masked"] else 1
        states = [f"{{{i}}}[None]" for i in range(first, len(node.inputs))]
        given = f"({', '.join(states)})" if lstm else states[0]
        call = ", ".join([f"{{{i}}}" for i in range(first)] + [given])
    return Layer("ops/rnn.py.jinja", cls, args, state, node.op, helpers, unpack=unpack,
                 outputs=("{0}", "{0}[0]", "{0}[0]")[:len(node.outputs)],
                 state_names=("", "_h", "_c")[:len(node.outputs)], call=call)


@renderer("bias_add")
def bias_add(node: Node, graph: Graph) -> Layer:
    """A bias no conv / linear before it could take (passes/fold.py folds the others): a small
    `BiasAdd` module holding it as a parameter. The channel dim is 1 of an NCHW image (the
    layout pass made every rank-4 tensor of an image model NCHW, rank 5 NCDHW; a sequence
    [N, C, T] of 1-D convs keeps no unfolded bias: passes/layout.py), else the last one."""
    channels = graph.weights[node.weights["bias"]].out_shape[0]
    shape = graph.tensor(node.inputs[0]).shape
    pass_ = LayoutPass(graph)
    first = len(shape) in pass_.spatial and graph.layout == "NCHW" and pass_.images
    if first and shape[1] not in (None, channels):
        first = False  # (a rank-4 tensor the layout pass left alone: [N, T, heads, size])
    args = {"channels": channels, "channels_first": first}
    return Layer("ops/bias_add.py.jinja", "BiasAdd", args, {"bias": node.weights["bias"]},
                 "bias", ("BiasAdd",))


@renderer("batch_norm")
def batch_norm(node: Node, graph: Graph) -> Layer:
    rank = graph.tensor(node.inputs[0]).rank
    cls = {2: "nn.BatchNorm1d", 3: "nn.BatchNorm1d", 4: "nn.BatchNorm2d"}.get(rank)
    if cls is None:
        raise ValueError(f"batch_norm on a rank-{rank} tensor")
    args = {
        "num_features": graph.weights[node.weights["mean"]].out_shape[0],
        "eps": _float(node.attrs["epsilon"]),
        "momentum": _float(node.attrs["momentum"]),
    }
    weights = node.weights
    state = {"weight": weights["scale"], "bias": weights["offset"]}
    state.update(running_mean=weights["mean"], running_var=weights["variance"])
    state[NUM_BATCHES] = NUM_BATCHES
    return Layer("ops/batch_norm.py.jinja", cls, args, state, "bn")


@renderer("layer_norm")
def layer_norm(node: Node, graph: Graph) -> Layer:
    rank = graph.tensor(node.inputs[0]).rank
    channels = graph.weights[node.weights["scale"]].out_shape[0]
    args = {"normalized_shape": channels, "eps": _float(node.attrs["epsilon"])}
    state = {"weight": node.weights["scale"], "bias": node.weights["offset"]}
    if node.attrs["axis"] == rank - 1:
        return Layer("ops/layer_norm.py.jinja", "nn.LayerNorm", args, state, "norm")
    if rank == 4 and node.attrs["axis"] == 1:
        return Layer("ops/layer_norm.py.jinja", "LayerNorm2d", args, state, "norm",
                     ("LayerNorm2d",))
    raise ValueError(f"layer_norm over axis {node.attrs['axis']} of a rank-{rank} tensor")


@renderer("rms_norm")
def rms_norm(node: Node, graph: Graph) -> Layer:
    """nn.RMSNorm over the last axis; Gemma's `* (1 + scale)` is RMSNormPlusOne, which keeps
    the source's stored scale (zeros mean no scaling), so the weights load unchanged."""
    shape = graph.tensor(node.inputs[0]).shape
    if node.attrs["axis"] != len(shape) - 1:
        raise ValueError(f"rms_norm over axis {node.attrs['axis']} of a rank-{len(shape)} tensor")
    args: dict[str, Any] = {"normalized_shape": shape[-1], "eps": _float(node.attrs["epsilon"])}
    if "scale" not in node.weights:
        args["elementwise_affine"] = False
        return Layer("ops/layer_norm.py.jinja", "nn.RMSNorm", args, {}, "norm")
    state = {"weight": node.weights["scale"]}
    if node.attrs["plus_one"]:
        return Layer("ops/layer_norm.py.jinja", "RMSNormPlusOne", args, state, "norm",
                     ("RMSNormPlusOne",))
    return Layer("ops/layer_norm.py.jinja", "nn.RMSNorm", args, state, "norm")


@renderer("max_pool2d", "avg_pool2d")
def pool2d(node: Node, graph: Graph) -> Layer | Expr:
    kind = "Max" if node.op == "max_pool2d" else "Avg"
    padding = node.attrs["padding"]
    if node.attrs["kernel_size"] == [1, 1] and padding in ("SAME", "VALID", [[0, 0], [0, 0]]):
        return _subsample(node)  # a 1x1 window only picks pixels (ResNet V2's shortcut)
    args: dict[str, Any] = {
        "kernel_size": _pair(node.attrs["kernel_size"]),
        "stride": _pair(node.attrs["strides"]),
    }
    if padding == "SAME":
        cls = f"{kind}Pool2dSame"
    elif _symmetric(padding) and all(p[0] * 2 <= k for p, k in zip(padding, node.attrs["kernel_size"])):
        cls = f"nn.{kind}Pool2d"
        if any(p[0] for p in padding):
            args["padding"] = _pair([p[0] for p in padding])
            if kind == "Avg":
                args["count_include_pad"] = False  # TF averages over real pixels only
    elif kind == "Max" and _ceil_mode_pads(node, graph):
        cls = "nn.MaxPool2d"  # the pad only completes the last window: PyTorch's ceil_mode
        args["ceil_mode"] = True
    else:
        cls = f"{kind}Pool2dSame"
        args["pad"] = _torch_pad(padding)
    helpers = (cls,) if not cls.startswith("nn.") else ()
    return Layer("ops/pool2d.py.jinja", cls, args, {}, "pool", helpers)


def _subsample(node: Node) -> Expr:
    """x[:, :, ::2, ::2]: every stride-th pixel, a view instead of a pooled copy."""
    steps = [(None, None, 1)] * 2 + [(None, None, step) for step in node.attrs["strides"]]
    return Expr("ops/tensor.py.jinja", {"kind": "slice", "index": SliceIndex(steps)}, hint="x")


def _ceil_mode_pads(node: Node, graph: Graph) -> bool:
    """Pads only after the input (TF 'SAME' with an even size) that give exactly the windows
    of ceil_mode: the same starts, the last window cut at the border. Max pooling ignores
    the -inf pad, so no padded copy of the input is needed."""
    if any(before for before, _ in node.attrs["padding"]):
        return False
    sizes = graph.tensor(node.inputs[0]).shape[2:]
    outs = node.outputs[0].shape[2:]
    for size, out, k, s in zip(sizes, outs, node.attrs["kernel_size"], node.attrs["strides"]):
        if size is None or out is None or size < k:
            return False
        ceil_out = -(-(size - k) // s) + 1
        if (ceil_out - 1) * s >= size:  # PyTorch drops a last window that starts past the end
            ceil_out -= 1
        if ceil_out != out:
            return False
    return True


@renderer("constant")
def constant(node: Node, graph: Graph) -> Layer:
    """A buffer, or a parameter where the source trains it (a layer scale, a class token)."""
    weight = graph.weights[node.weights["value"]]
    args = {"shape": tuple(weight.out_shape)}
    cls, hint = ("Learned", _variable_hint(weight.source_name)) if weight.trainable else (
        "Constant", "const")
    if cls == "Constant" and weight.dtype != "float32":  # integer ids, boolean masks, ...
        args["dtype"] = TorchDtype(weight.dtype)
    return Layer("ops/constant.py.jinja", cls, args, {"value": node.weights["value"]}, hint, (cls,))


class TorchDtype(str):
    """A dtype name whose repr is the torch dtype (`torch.int32`)."""

    def __repr__(self) -> str:
        return f"torch.{self}"


GENERIC_VARIABLE = re.compile(r"variable(_\d+)?|unknown(_\d+)?|embeddings|kernel|weight")


def _variable_hint(name: str) -> str:
    """A trainable tensor is called what its variable is (`cls_token`), or its layer where
    the variable's own name says nothing (Keras 3's `variable_3`, an Embedding's
    `position_embedding/embeddings`)."""
    parts = [part for part in name.split("/") if part]
    while parts and GENERIC_VARIABLE.fullmatch(parts[-1]):
        parts.pop()
    return parts[-1] if parts else "param"


# -- expressions -------------------------------------------------------------------------
@renderer("scalar")
def scalar(node: Node, graph: Graph) -> Expr:
    value = node.attrs["value"]
    return Expr("ops/constant.py.jinja", {"value": value if isinstance(value, int) else float(value)},
                hint="scalar")


def _with_forms() -> list[str]:
    """The ops one family template writes from the catalogue's form/operator alone."""
    return [op for op, spec in op_catalogue().items()
            if not op.startswith("$") and ("form" in spec or "operator" in spec)]


@renderer(*_with_forms())
def elementwise(node: Node, graph: Graph) -> Expr:
    """An activation, unary math function or binary operator: its catalogue entry says
    which template and which PyTorch function or operator; attributes go along as data."""
    spec = op_catalogue()[node.op]
    attrs = {"kind": node.op, **{key: spec[key] for key in FORM_KEYS if key in spec}}
    if "approximate" in node.attrs:
        attrs["approximate"] = node.attrs["approximate"]
    if node.op == "leaky_relu":
        attrs["alpha"] = _float(node.attrs["alpha"])
    if node.op in ("maximum", "minimum") and node.outputs[0].size:  # of Python sizes
        attrs["form"] = "max" if node.op == "maximum" else "min"
    hint = node.op if spec["template"] != "ops/math.py.jinja" else "x"
    return Expr(spec["template"], attrs, hint=hint)


@renderer("slice")
def slice_op(node: Node, graph: Graph) -> Expr:
    index = SliceIndex(tuple(axis) for axis in node.attrs["axes"])
    return Expr("ops/tensor.py.jinja", {"kind": "slice", "index": index}, hint="x")


@renderer("squeeze", "transpose", "concat", "softmax", "log_softmax", "pad", "identity", "flip")
def tensor_op(node: Node, graph: Graph) -> Expr:
    attrs: dict[str, Any] = {"kind": node.op}
    if node.op == "squeeze":
        attrs["dim"] = tuple(node.attrs["axes"])
        input_shape = graph.tensor(node.inputs[0]).shape
        attrs["flatten"] = node.attrs["axes"] == list(range(2, len(input_shape)))
    elif node.op == "transpose":
        attrs["perm"] = tuple(node.attrs["perm"])
    elif node.op == "flip":
        axes = node.attrs["axes"]
        attrs["dims"] = axes[0] if len(axes) == 1 else tuple(axes)
    elif node.op in ("concat", "softmax", "log_softmax"):
        attrs["dim"] = node.attrs["axis"]
    elif node.op == "pad":
        pads = node.attrs["pads"]
        attrs["pad"] = _torch_pad(pads[2:]) if pads[:2] == [[0, 0], [0, 0]] else _torch_pad(pads)
        if node.attrs["mode"] != "constant":  # F.pad's reflect/replicate: padded axes only
            from codegen.backends.pytorch.slicing_ops import mirror_pad

            info = graph.tensor(node.inputs[0])
            helper = mirror_pad(pads, node.attrs["mode"], info.rank, info.dtype)
            if helper is not None:
                return helper
            while pads and pads[0] == [0, 0]:
                pads = pads[1:]
            attrs["pad"] = _torch_pad(pads)
        # TF's symmetric mirror pad repeats the edge pixel: one pixel of it is "replicate"
        # (wider ones are refused by the frontend)
        attrs["mode"] = "replicate" if node.attrs["mode"] == "symmetric" else node.attrs["mode"]
        attrs["value"] = node.attrs.get("value", 0.0)
    return Expr("ops/tensor.py.jinja", attrs, hint=node.op)


from codegen.backends.pytorch import (  # noqa: F401 - register their renderers
    conv_ops,
    counting_ops,
    gather_ops,
    image_ops,
    quant_ops,
    reduce_ops,
    reshape,
    sequence_ops,
    size_ops,
    slicing_ops,
    spectral_ops,
)
