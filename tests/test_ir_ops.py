"""Per-op tests without TensorFlow: an IR graph of one op, written by the test itself
(graph.json + weights in TF's NHWC layout and TF semantics), built with `codegen build`
in-process, run, and compared with a numpy reference of the TF op. They check the passes
(NCHW layout, bias folding, padding), the renderers and the templates on their own, in the
style of onnx2torch's converter tests. With tests/test_catalog.py they cover every op of the
catalogue; a test of the catalogue checks that none is left out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from codegen.backends.pytorch.build import build
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array
from codegen.resources import op_catalogue
from codegen.verify import import_generated

RNG = np.random.default_rng(0)


def run_one_op(tmp_path, op: str, x: np.ndarray, out_shape: list, *, attrs=None, weights=None,
               extra: list[Node] = (), inputs=None, dtype: str = "float32") -> np.ndarray:
    """Write a graph input -> [extra nodes] -> `op` -> output, build it, run it on `x`
    (NHWC for rank 4, NDHWC for rank 5, as TF takes it) and return the output in TF's
    layout."""
    ir_dir = tmp_path / "ir"
    ir_dir.mkdir(parents=True, exist_ok=True)
    names = {}
    for role, value in (weights or {}).items():
        name = f"{op}/{role}"
        names[role] = name
        weights[role] = save_array(ir_dir, name, value, file_name=f"{op}.{role}.npy", tf_name=name)
    shape = [None, *x.shape[1:]]
    node = Node(op, op, inputs or ["x:0"], [TensorInfo(out_shape, dtype)], attrs=attrs or {},
                weights=names, tf_name=op)
    graph = Graph([GraphInput("x", shape, str(x.dtype))], [GraphOutput("y", f"{op}:0")],
                  {n.name: n for n in [*extra, node]}, {names[r]: e for r, e in (weights or {}).items()},
                  layout="NHWC")
    for n in extra:
        for role, name in n.weights.items():
            graph.weights[name] = save_array(ir_dir, name, n.attrs.pop(f"_{role}"),
                                             file_name=f"{n.name}.{role}.npy", tf_name=name)
    graph.save(ir_dir)
    build(ir_dir, tmp_path / "model", quiet=True)
    model = import_generated(tmp_path / "model").load_model()
    io = json.loads((tmp_path / "model" / ".codegen" / "io.json").read_text())
    channels_first = (0, x.ndim - 1, *range(1, x.ndim - 1))  # NHWC -> NCHW, NDHWC -> NCDHW
    feed = torch.from_numpy(x.transpose(channels_first).copy() if io["inputs"][0]["nchw"] else x)
    with torch.no_grad():
        y = model(feed).numpy()
    if io["outputs"][0]["nchw"]:  # the layout pass made it channels-first
        return y.transpose(0, *range(2, y.ndim), 1)
    return y


def images(*shape) -> np.ndarray:
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_reference(x, kernel, strides, pads, groups=1):
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    windows = sliding_window_view(x, kernel.shape[:2], axis=(1, 2))[:, ::strides[0], ::strides[1]]
    per_group = kernel.shape[2]
    outs = []
    for g in range(groups):
        part = windows[:, :, :, g * per_group:(g + 1) * per_group]
        k = kernel[..., g * (kernel.shape[3] // groups):(g + 1) * (kernel.shape[3] // groups)]
        outs.append(np.einsum("nhwcij,ijco->nhwo", part, k))
    return np.concatenate(outs, axis=-1)


CONVS = [("VALID", 1, 1), ("SAME", 2, 1), ("SAME", 1, 3), ([[1, 0], [2, 1]], 1, 1)]


@pytest.mark.parametrize("padding, stride, groups", CONVS)
def test_conv2d_with_bias(tmp_path, padding, stride, groups):
    x = images(2, 7, 7, 3)
    kernel = RNG.normal(0, 0.5, (3, 3, 3 // groups, 6)).astype(np.float32)
    bias = RNG.normal(0, 0.5, 6).astype(np.float32)
    pads = ([same_pads(7, 3, stride)] * 2 if padding == "SAME" else
            [(0, 0)] * 2 if padding == "VALID" else [tuple(p) for p in padding])
    expected = conv_reference(x, kernel, (stride, stride), pads, groups)
    conv = Node("conv", "conv2d", ["x:0"], [TensorInfo([None, *expected.shape[1:]])],
                attrs={"strides": [stride] * 2, "dilations": [1, 1], "padding": padding,
                       "groups": groups, "_kernel": kernel}, weights={"kernel": "conv/kernel"})
    ours = run_one_op(tmp_path, "bias_add", x, [None, *expected.shape[1:]],
                      weights={"bias": bias}, extra=[conv], inputs=["conv:0"])
    np.testing.assert_allclose(ours, expected + bias, rtol=1e-5, atol=1e-5)
    assert "bias=False" not in (tmp_path / "model" / "model.py").read_text()  # bias folded in


def test_linear_and_embedding(tmp_path):
    x = images(4, 5)
    kernel, bias = images(5, 3), images(3)
    ours = run_one_op(tmp_path / "a", "bias_add", x, [None, 3], weights={"bias": bias},
                      extra=[Node("fc", "linear", ["x:0"], [TensorInfo([None, 3])],
                                  attrs={"_kernel": kernel}, weights={"kernel": "fc/kernel"})],
                      inputs=["fc:0"])
    np.testing.assert_allclose(ours, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    ids, table = RNG.integers(0, 9, (2, 4)).astype(np.int32), images(9, 3)
    ours = run_one_op(tmp_path / "b", "embedding", ids, [None, 4, 3], weights={"table": table})
    np.testing.assert_array_equal(ours, table[ids])


def test_batch_norm_and_layer_norm(tmp_path):
    x = images(2, 4, 4, 3)
    stats = {"scale": images(3) + 1.5, "offset": images(3), "mean": images(3),
             "variance": images(3) + 1.5}
    ours = run_one_op(tmp_path / "bn", "batch_norm", x, [None, 4, 4, 3], weights=dict(stats),
                      attrs={"epsilon": 1e-3, "momentum": 0.01})
    expected = (x - stats["mean"]) / np.sqrt(stats["variance"] + 1e-3) * stats["scale"] + stats["offset"]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    x = images(2, 6)
    gamma, beta = images(6) + 1.5, images(6)
    ours = run_one_op(tmp_path / "ln", "layer_norm", x, [None, 6],
                      weights={"scale": gamma, "offset": beta}, attrs={"axis": 1, "epsilon": 1e-5})
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ours, expected * gamma + beta, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("plus_one", [False, True, None])  # None: no scale
def test_rms_norm(tmp_path, plus_one):
    x = images(2, 5, 6)
    scale = images(6) + 1.5
    rms = np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
    weights = {} if plus_one is None else {"scale": scale.copy()}
    ours = run_one_op(tmp_path, "rms_norm", x, [None, 5, 6], weights=weights,
                      attrs={"axis": 2, "epsilon": 1e-6, "plus_one": bool(plus_one)})
    factor = 1.0 if plus_one is None else (1 + scale if plus_one else scale)
    np.testing.assert_allclose(ours, x / rms * factor, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_pools(tmp_path, op, padding):
    x = images(2, 6, 6, 3)
    pads = [same_pads(6, 3, 2)] * 2 if padding == "SAME" else [(0, 0)] * 2
    fill = -np.inf if op == "max_pool2d" else np.nan
    windows = sliding_window_view(np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill),
                                  (3, 3), axis=(1, 2))[:, ::2, ::2]
    expected = np.nanmax(windows, (-2, -1)) if op == "max_pool2d" else np.nanmean(windows, (-2, -1))
    ours = run_one_op(tmp_path, op, x, [None, *expected.shape[1:]],
                      attrs={"kernel_size": [3, 3], "strides": [2, 2], "padding": padding})
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


SHAPE_OPS = [  # op, attrs, reference on NHWC x [2, 4, 5, 3], output shape
    ("pad", {"pads": [[0, 0], [1, 2], [0, 1], [0, 0]], "mode": "constant", "value": 0.0},
     lambda x: np.pad(x, [(0, 0), (1, 2), (0, 1), (0, 0)]), [None, 7, 6, 3]),
    ("mean", {"axes": [1, 2], "keepdims": False}, lambda x: x.mean((1, 2)), [None, 3]),
    ("reduce_max", {"axes": [1, 2], "keepdims": True}, lambda x: x.max((1, 2), keepdims=True),
     [None, 1, 1, 3]),
    ("reduce_sum", {"axes": [3], "keepdims": False}, lambda x: x.sum(3), [None, 4, 5]),
    ("reduce_any", {"axes": [3], "keepdims": False}, lambda x: (x > 0.5).any(3), [None, 4, 5]),
    ("reduce_all", {"axes": [1, 3], "keepdims": True}, lambda x: (x > 0.5).all((1, 3), keepdims=True),
     [None, 1, 5, 1]),
    ("reduce_min", {"axes": [2, 3], "keepdims": False}, lambda x: x.min((2, 3)), [None, 4]),
    ("reduce_prod", {"axes": [1, 3], "keepdims": False}, lambda x: x.prod((1, 3)), [None, 5]),
    ("reduce_prod", {"axes": [2], "keepdims": True}, lambda x: x.prod(2, keepdims=True),
     [None, 4, 1, 3]),
    ("euclidean_norm", {"axes": [1, 2], "keepdims": True},
     lambda x: np.sqrt((x ** 2).sum((1, 2), keepdims=True)), [None, 1, 1, 3]),
    ("argmax", {"axes": [3], "keepdims": False, "dtype": "int64"}, lambda x: x.argmax(3),
     [None, 4, 5]),
    ("argmin", {"axes": [1], "keepdims": False, "dtype": "int32"},
     lambda x: x.argmin(1).astype(np.int32), [None, 5, 3]),
    ("reshape", {"shape": [-1, 60]}, lambda x: x.reshape(-1, 60), [None, 60]),
    # merging H and W ([N, H * W, C], a ViT's patches): x.flatten(1, 2), never reshape(-1, -1, 3)
    ("reshape", {"shape": [-1, -1, 3]}, lambda x: x.reshape(-1, 20, 3), [None, 20, 3]),
    ("reshape", {"shape": [-1, 4, 5, 3, 1]}, lambda x: x.reshape(-1, 4, 5, 3, 1),
     [None, 4, 5, 3, 1]),
    ("transpose", {"perm": [0, 2, 1, 3]}, lambda x: x.transpose(0, 2, 1, 3), [None, 5, 4, 3]),
    ("softmax", {"axis": 3}, lambda x: np.exp(x) / np.exp(x).sum(3, keepdims=True), [None, 4, 5, 3]),
    ("log_softmax", {"axis": 3}, lambda x: x - np.log(np.exp(x).sum(3, keepdims=True)),
     [None, 4, 5, 3]),
    ("slice", {"axes": [[None, None, 1], [1, 3, 1], [None, None, 2], [0, 2, 1]]},
     lambda x: x[:, 1:3, ::2, 0:2], [None, 2, 3, 2]),
    ("identity", {}, lambda x: x, [None, 4, 5, 3]),
    ("flip", {"axes": [1]}, lambda x: x[:, ::-1], [None, 4, 5, 3]),
    ("clamp", {"min": -0.5, "max": 0.25}, lambda x: np.clip(x, -0.5, 0.25), [None, 4, 5, 3]),
    ("cumsum", {"axis": 2, "exclusive": True, "reverse": True},  # along W, from the end
     lambda x: np.flip(np.cumsum(np.flip(x, 2), 2) - np.flip(x, 2), 2), [None, 4, 5, 3]),
]


def _depth_to_space(x, b):  # TF's order: block rows, block columns, then channels
    n, h, w, c = x.shape
    return x.reshape(n, h, w, b, b, c // b // b).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, h * b, w * b, c // b // b)


def _space_to_depth(x, b):
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, h // b, w // b, b * b * c)


IMAGE_OPS = [  # op, attrs, reference on NHWC x [2, 4, 6, 8], output shape
    ("depth_to_space", {"block_size": 2}, lambda x: _depth_to_space(x, 2), [None, 8, 12, 2]),
    ("space_to_depth", {"block_size": 2}, lambda x: _space_to_depth(x, 2), [None, 2, 3, 32]),
    ("resize", {"mode": "nearest", "align_corners": False, "antialias": False, "size": None,
                "scale": [2, 3]}, lambda x: x.repeat(2, 1).repeat(3, 2), [None, 8, 18, 8]),
]


@pytest.mark.parametrize("op, attrs, reference, shape", IMAGE_OPS, ids=[s[0] for s in IMAGE_OPS])
def test_image_ops(tmp_path, op, attrs, reference, shape):
    x = images(2, 4, 6, 8)
    ours = run_one_op(tmp_path, op, x, shape, attrs=attrs)
    np.testing.assert_array_equal(ours, reference(x))


@pytest.mark.parametrize("op, attrs, reference, shape", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops(tmp_path, op, attrs, reference, shape):
    x = images(2, 4, 5, 3)
    if op in ("reduce_any", "reduce_all"):
        x = x > 0.5  # booleans
    dtype = attrs.get("dtype", "bool" if x.dtype == bool else "float32")
    ours = run_one_op(tmp_path, op, x, shape, attrs=attrs, dtype=dtype)
    assert ours.dtype == reference(x).dtype
    np.testing.assert_allclose(ours, reference(x), rtol=1e-5, atol=1e-6)


def test_truncate_div_rounds_towards_zero(tmp_path):
    x = np.array([[-7, -6, -1, 0, 1, 5, 7]], np.int32)
    three = Node("three", "scalar", [], [TensorInfo([], "int32")], attrs={"value": -3})
    ours = run_one_op(tmp_path, "truncate_div", x, [None, 7], extra=[three],
                      inputs=["x:0", "three:0"], dtype="int32")
    np.testing.assert_array_equal(ours, np.array([[2, 2, 0, 0, 0, -1, -2]], np.int32))


def test_squeeze_concat_constant_scalar(tmp_path):
    x = images(2, 1, 1, 3)
    ours = run_one_op(tmp_path / "squeeze", "squeeze", x, [None, 3], attrs={"axes": [1, 2]})
    np.testing.assert_array_equal(ours, x[:, 0, 0])
    x = images(2, 4, 5, 3)
    value = images(1, 4, 5, 3)
    const = Node("c", "constant", [], [TensorInfo([1, 4, 5, 3])], attrs={"_value": value},
                 weights={"value": "c/value"})
    half = Node("half", "scalar", [], [TensorInfo([])], attrs={"value": 0.5})
    times = Node("times", "mul", ["x:0", "half:0"], [TensorInfo([None, 4, 5, 3])])
    plus = Node("plus", "add", ["times:0", "c:0"], [TensorInfo([None, 4, 5, 3])])
    ours = run_one_op(tmp_path / "concat", "concat", x, [None, 4, 5, 6], attrs={"axis": 3},
                      extra=[const, half, times, plus], inputs=["x:0", "plus:0"])
    expected = np.concatenate([x, x * 0.5 + value], axis=3)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def rnn_reference(op: str, x, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", reset_after=True):
    """The sequence of h, step by step, with PyTorch's gate order (LSTM i, f, g, o;
    GRU r, z, n), as the IR ops define their weights."""
    batch, units = x.shape[0], w_hh.shape[1]
    h, c, outputs = np.zeros((batch, units)), np.zeros((batch, units)), []
    for step in range(x.shape[1]):
        gx, gh = x[:, step] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if op == "lstm":
            i, f, g, o = np.split(gx + gh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        elif op == "gru":
            (xr, xz, xn), (hr, hz, hn) = np.split(gx, 3, axis=1), np.split(gh, 3, axis=1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            if reset_after:
                h = (1 - z) * np.tanh(xn + r * hn) + z * h
            else:  # r scales h before the recurrent weights (no recurrent bias then)
                h = (1 - z) * np.tanh(xn + (r * h) @ np.split(w_hh, 3)[2].T) + z * h
        else:
            h = np.tanh(gx + gh) if nonlinearity == "tanh" else np.maximum(gx + gh, 0)
        outputs.append(h)
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("op, gates, attrs", [
    ("lstm", 4, {"one_bias": True}), ("gru", 3, {}), ("gru", 3, {"reset_after": False}),
    ("rnn", 1, {"nonlinearity": "relu"})])
def test_recurrent_layers(tmp_path, op, gates, attrs):
    x, units = images(2, 6, 3), 5
    reset_after = attrs.get("reset_after", True)
    weights = {"weight_ih": images(gates * units, 3), "weight_hh": images(gates * units, units),
               "bias_ih": images(gates * units)}
    if reset_after:  # (a GRU with reset_after=False has no recurrent bias)
        weights["bias_hh"] = (np.zeros(gates * units, np.float32) if attrs.get("one_bias")
                              else images(gates * units))
    expected = rnn_reference(op, x, weights["weight_ih"], weights["weight_hh"],
                             weights["bias_ih"], weights.get("bias_hh", 0.0),
                             attrs.get("nonlinearity", "tanh"), reset_after)
    ours = run_one_op(tmp_path, op, x, [None, 6, units], weights=weights,
                      attrs={"hidden_size": units, **attrs})
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


TESTED_HERE = {"conv2d", "bias_add", "linear", "embedding", "batch_norm", "layer_norm",
               "max_pool2d", "avg_pool2d", "squeeze", "concat", "constant", "scalar", "mul", "add",
               "lstm", "gru", "rnn", "truncate_div", "rms_norm",
               *(op for op, *_ in SHAPE_OPS), *(op for op, *_ in IMAGE_OPS)}


def test_every_catalogue_op_has_a_tf_free_test():
    """The ops with a 'form' are computed in test_catalog.py; every other op here."""
    catalogue = op_catalogue()
    forms = {op for op, spec in catalogue.items() if {"form", "operator"} & set(spec)}
    from test_catalog import HELPER_OPS  # (fake quantization and detection helpers)
    from test_ir_alibi import TESTED as ALIBI_OPS
    from test_ir_conv_ops import TESTED as CONV_OPS  # tested in those modules
    from test_ir_gather_ops import TESTED as GATHER_OPS
    from test_ir_position_bucket import TESTED as BUCKET_OPS
    from test_ir_rotary import TESTED as ROTARY_OPS
    from test_ir_sequence_ops import TESTED as SEQUENCE_OPS
    from test_ir_sizes import TESTED as SIZE_OPS
    from test_ir_slicing_ops import TESTED as SLICING_OPS

    untested = (set(catalogue) - forms - TESTED_HERE - SEQUENCE_OPS - CONV_OPS - SLICING_OPS
                - HELPER_OPS - GATHER_OPS - SIZE_OPS - ROTARY_OPS - BUCKET_OPS - ALIBI_OPS
                - {op for op in catalogue if op[0] == "$"})
    assert not untested, f"add a test to tests/test_ir_ops.py for {sorted(untested)}"


def test_per_channel_add_after_a_conv_that_has_its_bias(tmp_path):
    """conv -> bias_add -> + constant[1, 1, 1, C]: the bias folds into the conv, the second
    per-channel add stays an add over channels (it once got reshaped to [C] even when it
    could not fold, and then broadcast over the width)."""
    x = images(2, 6, 6, 3)
    kernel = RNG.normal(0, 0.5, (3, 3, 3, 6)).astype(np.float32)
    bias, shift = images(6), images(1, 1, 1, 6)
    conv = Node("conv", "conv2d", ["x:0"], [TensorInfo([None, 6, 6, 6])],
                attrs={"strides": [1, 1], "dilations": [1, 1], "padding": "SAME", "groups": 1,
                       "_kernel": kernel}, weights={"kernel": "conv/kernel"})
    biased = Node("biased", "bias_add", ["conv:0"], [TensorInfo([None, 6, 6, 6])],
                  attrs={"_bias": bias}, weights={"bias": "biased/bias"})
    const = Node("c", "constant", [], [TensorInfo([1, 1, 1, 6])], attrs={"_value": shift},
                 weights={"value": "c/value"})
    ours = run_one_op(tmp_path, "add", x, [None, 6, 6, 6], extra=[conv, biased, const],
                      inputs=["biased:0", "c:0"])
    expected = conv_reference(x, kernel, (1, 1), [same_pads(6, 3, 1)] * 2) + bias + shift
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
