"""Renderers of the convolution family of every rank: nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d
and the 1-D and 3-D poolings (2-D pooling is ops.pool2d). All write ops/conv2d.py.jinja or
ops/pool2d.py.jinja, whose `cls` names the class of the right rank."""

from __future__ import annotations

from typing import Any

from codegen.backends.pytorch.registry import Layer, _symmetric, _torch_pad, renderer
from codegen.ir.graph import Graph, Node

CONV_HELPERS = ("PaddedConv1d", "PaddedConv3d", "Conv1dSame", "Conv3dSame", "ConvTranspose1dCrop",
                "ConvTranspose2dCrop", "ConvTranspose3dCrop", "MaxPool1dSame", "MaxPool3dSame",
                "AvgPool1dSame", "AvgPool3dSame")  # the helper classes of helpers.py.jinja they use
RANK = {"conv1d": 1, "conv2d": 2, "conv3d": 3, "conv_transpose1d": 1, "conv_transpose2d": 2,
        "conv_transpose3d": 3, "max_pool1d": 1, "avg_pool1d": 1, "max_pool3d": 3, "avg_pool3d": 3}


def _one(values: list[int]) -> int | tuple[int, ...]:
    """One number where every spatial axis has the same value (kernel_size=3), else a tuple."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def _state(node: Node) -> dict[str, str]:
    state = {"weight": node.weights["kernel"]}
    if "bias" in node.weights:
        state["bias"] = node.weights["bias"]
    return state


@renderer("conv1d", "conv2d", "conv3d")
def conv(node: Node, graph: Graph) -> Layer:
    rank = RANK[node.op]
    out_channels, in_per_group, *kernel = graph.weights[node.weights["kernel"]].out_shape
    padding = node.attrs["padding"]
    args: dict[str, Any] = {
        "in_channels": in_per_group * node.attrs["groups"],
        "out_channels": out_channels,
        "kernel_size": _one(kernel),
        "stride": _one(node.attrs["strides"]),
    }
    cls, helpers = f"nn.Conv{rank}d", ()
    if padding == "SAME":
        cls, helpers = f"Conv{rank}dSame", (f"Conv{rank}dSame",)
    elif _symmetric(padding):
        args["padding"] = _one([pads[0] for pads in padding])
    else:  # TF 'SAME' with the odd step at the end, or a causal Conv1D's pad in front
        cls, helpers = f"PaddedConv{rank}d", (f"PaddedConv{rank}d",)
        args["pad"] = _torch_pad(padding)
    args["dilation"] = _one(node.attrs["dilations"])
    args["groups"] = node.attrs["groups"]
    args["bias"] = "bias" in node.weights
    return Layer("ops/conv2d.py.jinja", cls, args, _state(node), "conv", helpers)


@renderer("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose(node: Node, graph: Graph) -> Layer:
    """crop [[before, after]]: the smaller of the two is PyTorch's padding; a longer end is
    cut in forward (ConvTranspose2dCrop); a negative end is output_padding."""
    rank = RANK[node.op]
    in_channels, out_channels, *kernel = graph.weights[node.weights["kernel"]].out_shape
    padding, output_padding, trim = [], [], []
    for before, after in node.attrs["crop"]:
        padding.append(max(min(before, after), 0))
        output_padding.append(max(-after, 0))
        trim.append(max(after - before, 0))
    args: dict[str, Any] = {"in_channels": in_channels, "out_channels": out_channels,
                            "kernel_size": _one(kernel), "stride": _one(node.attrs["strides"]),
                            "padding": _one(padding)}
    if any(output_padding):
        args["output_padding"] = _one(output_padding)
    cls, helpers = f"nn.ConvTranspose{rank}d", ()
    if any(trim):
        cls, helpers = f"ConvTranspose{rank}dCrop", (f"ConvTranspose{rank}dCrop",)
        args["trim"] = tuple(trim)
    args["dilation"] = _one(node.attrs["dilations"])
    args["groups"] = 1
    args["bias"] = "bias" in node.weights
    return Layer("ops/conv2d.py.jinja", cls, args, _state(node), "conv", helpers)


@renderer("max_pool1d", "avg_pool1d", "max_pool3d", "avg_pool3d")
def pool(node: Node, graph: Graph) -> Layer:
    rank, kind = RANK[node.op], "Max" if node.op.startswith("max") else "Avg"
    padding, kernel = node.attrs["padding"], node.attrs["kernel_size"]
    args: dict[str, Any] = {"kernel_size": _one(kernel), "stride": _one(node.attrs["strides"])}
    if padding == "SAME":
        cls = f"{kind}Pool{rank}dSame"
    elif _symmetric(padding) and all(p[0] * 2 <= k for p, k in zip(padding, kernel)):
        cls = f"nn.{kind}Pool{rank}d"
        if any(p[0] for p in padding):
            args["padding"] = _one([p[0] for p in padding])
            if kind == "Avg":
                args["count_include_pad"] = False  # TF averages over real steps only
    else:
        cls = f"{kind}Pool{rank}dSame"
        args["pad"] = _torch_pad(padding)
    helpers = (cls,) if not cls.startswith("nn.") else ()
    return Layer("ops/pool2d.py.jinja", cls, args, {}, "pool", helpers)
