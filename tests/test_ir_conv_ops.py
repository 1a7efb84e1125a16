"""The convolution family of every rank without TensorFlow (as tests/test_ir_ops.py): one
IR node in TF's layout ([N, T, C] sequences, NDHWC volumes) built with `codegen build`, run,
and compared with a numpy reference of the TF op: conv1d (causal pad folded), conv3d,
the transposed convs (output_padding and the cropped 'SAME' form), 1-D and 3-D pooling.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_ir_ops import run_one_op

from codegen.ir.graph import Node, TensorInfo

RNG = np.random.default_rng(1)
TESTED = {"conv1d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
          "max_pool1d", "avg_pool1d", "max_pool3d", "avg_pool3d"}


def floats(*shape) -> np.ndarray:
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def conv_nd(x, kernel, stride, pads, dilation=1):
    """TF's conv of a channels-last x with a [*k, in, out] kernel (groups 1), pads per axis."""
    spatial = x.ndim - 2
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    extent = [(k - 1) * dilation + 1 for k in kernel.shape[:spatial]]
    out_sizes = [(size - e) // stride + 1 for size, e in zip(x.shape[1:-1], extent)]
    out = np.zeros((x.shape[0], *out_sizes, kernel.shape[-1]), np.float64)
    for offset in itertools.product(*(range(k) for k in kernel.shape[:spatial])):
        index = tuple(slice(o * dilation, o * dilation + (n - 1) * stride + 1, stride)
                      for o, n in zip(offset, out_sizes))
        out += x[(slice(None), *index)] @ kernel[offset]
    return out


def conv_transpose_nd(x, kernel, stride, out_sizes, pad_before):
    """TF's conv_transpose: scatter every input step into the full output, keep
    out_sizes from pad_before (kernel [*k, out, in])."""
    spatial = x.ndim - 2
    full = [(n - 1) * stride + k for n, k in zip(x.shape[1:-1], kernel.shape[:spatial])]
    y = np.zeros((x.shape[0], *(max(f, o + p) for f, o, p in zip(full, out_sizes, pad_before)),
                  kernel.shape[-2]), np.float64)
    for offset in itertools.product(*(range(k) for k in kernel.shape[:spatial])):
        index = tuple(slice(o, o + (n - 1) * stride + 1, stride) for o, n in zip(offset, x.shape[1:-1]))
        y[(slice(None), *index)] += x @ kernel[offset].T
    return y[(slice(None), *(slice(p, p + o) for p, o in zip(pad_before, out_sizes)))]


def test_causal_dilated_conv1d_with_its_pad_folded(tmp_path):
    """A causal Conv1D: pad 2 * (k - 1) steps in front of a VALID dilated conv; the pad
    folds into the conv (PaddedConv1d), the sequence comes back as [N, T, C]."""
    x, kernel = floats(2, 9, 3), floats(3, 3, 5)
    pad = Node("pad", "pad", ["x:0"], [TensorInfo([None, 13, 3])],
               attrs={"pads": [[0, 0], [4, 0], [0, 0]], "mode": "constant", "value": 0.0})
    ours = run_one_op(tmp_path, "conv1d", x, [None, 9, 5], inputs=["pad:0"], extra=[pad],
                      attrs={"strides": [1], "dilations": [2], "padding": "VALID", "groups": 1},
                      weights={"kernel": kernel})
    np.testing.assert_allclose(ours, conv_nd(x, kernel, 1, [(4, 0)], 2), rtol=1e-5, atol=1e-5)
    source = (tmp_path / "model" / "model.py").read_text()
    for text in ("PaddedConv1d(", "pad=(4, 0)", "dilation=2", "x.permute(0, 2, 1)"):
        assert text in source, text
    assert "F.pad(x" not in source.split("def build_model")[0].split("class Model")[-1]


@pytest.mark.parametrize("padding, stride", [("SAME", 2), ("VALID", 1), ("SAME", 1)])
def test_conv3d(tmp_path, padding, stride):
    x, kernel = floats(2, 5, 6, 4, 2), floats(3, 3, 2, 2, 4)
    pads = [(0, 0)] * 3
    if padding == "SAME":
        pads = []
        for size, k in zip(x.shape[1:4], kernel.shape[:3]):
            total = max((-(-size // stride) - 1) * stride + k - size, 0)
            pads.append((total // 2, total - total // 2))
    expected = conv_nd(x, kernel, stride, pads)
    ours = run_one_op(tmp_path, "conv3d", x, [None, *expected.shape[1:]],
                      attrs={"strides": [stride] * 3, "dilations": [1, 1, 1], "padding": padding,
                             "groups": 1}, weights={"kernel": kernel})
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    source = (tmp_path / "model" / "model.py").read_text()
    assert ("nn.Conv3d(2, 4" if padding == "VALID" else "= PaddedConv3d(") in source


# (kernel, stride, crop): 'SAME' k3 s2 keeps one step less than padding=0 gives (cropped);
# 'VALID' k1 s2 needs one step more than the full output (output_padding); k4 s2 'SAME'
# crops one step at each end (padding=1)
TRANSPOSES = [(3, 2, [0, 1]), (1, 2, [0, -1]), (4, 2, [1, 1])]


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("k, stride, crop", TRANSPOSES)
def test_conv_transpose(tmp_path, rank, k, stride, crop):
    sizes = [4, 3, 2][:rank]
    x, kernel = floats(2, *sizes, 3), floats(*[k] * rank, 5, 3)
    out_sizes = [(n - 1) * stride + k - crop[0] - crop[1] for n in sizes]
    expected = conv_transpose_nd(x, kernel, stride, out_sizes, [crop[0]] * rank)
    ours = run_one_op(tmp_path, f"conv_transpose{rank}d", x, [None, *expected.shape[1:]],
                      attrs={"strides": [stride] * rank, "dilations": [1] * rank,
                             "crop": [crop] * rank}, weights={"kernel": kernel})
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    source = (tmp_path / "model" / "model.py").read_text()
    if crop[1] > crop[0]:
        assert f"ConvTranspose{rank}dCrop(" in source
    else:
        assert f"nn.ConvTranspose{rank}d(" in source


def pool_reference(x, kind, k, stride, pads):
    spatial = x.ndim - 2
    fill = -np.inf if kind == "max" else np.nan
    x = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
    out_sizes = [(size - k) // stride + 1 for size in x.shape[1:-1]]
    windows = np.stack([x[(slice(None), *(slice(o, o + (n - 1) * stride + 1, stride)
                                           for o, n in zip(offset, out_sizes)))]
                        for offset in itertools.product(range(k), repeat=spatial)])
    return np.nanmax(windows, 0) if kind == "max" else np.nanmean(windows, 0)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_pools(tmp_path, rank, kind, padding):
    x = floats(2, *[5] * rank, 3)
    pads = [(0, 1)] * rank if padding == "SAME" else [(0, 0)] * rank  # k2 s2 on 5: one at the end
    expected = pool_reference(x, kind, 2, 2, pads)
    ours = run_one_op(tmp_path, f"{kind}_pool{rank}d", x, [None, *expected.shape[1:]],
                      attrs={"kernel_size": [2] * rank, "strides": [2] * rank, "padding": padding})
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
