"""Blocks whose strided instances pad differently (codegen/backends/pytorch/modules.py,
`padded_form`): TF 'SAME' with stride 2 pads the odd pixel at the end only (PaddedConv2d),
stride 1 pads both sides (nn.Conv2d(padding=...)). An inverted-residual block that comes
in both forms is still one class, its depthwise convolution a PaddedConv2d taking `pad`,
as MobileNetV3Small's blocks are (issue 22); the BatchNorm of an optional part is fused
into its convolution where the block has the part (render.py, conv_bn_pairs)."""

from __future__ import annotations

import re

import numpy as np
import torch
from test_blocks import RNG, Builder, classes_of, forward_lengths

from codegen.backends.pytorch.build import build
from codegen.backends.pytorch.modules import padded_form
from codegen.backends.pytorch.ops import Layer
from codegen.ir.graph import Node, TensorInfo
from codegen.verify import import_generated


def test_a_symmetric_convolution_as_a_padded_one(tmp_path):
    conv = Layer("ops/conv2d.py.jinja", "nn.Conv2d",
                 {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "stride": 1,
                  "padding": (1, 2), "dilation": 1, "groups": 4, "bias": False},
                 {"weight": "w"}, "conv")
    padded = padded_form(conv)
    assert padded.cls == "PaddedConv2d" and padded.helpers == ("PaddedConv2d",)
    assert padded.args["pad"] == (2, 2, 1, 1)  # F.pad's (left, right, top, bottom)
    assert list(padded.args) == ["in_channels", "out_channels", "kernel_size", "stride", "pad",
                                 "dilation", "groups", "bias"]
    assert padded.state == conv.state
    assert padded_form(padded) is padded
    same = Layer("ops/conv2d.py.jinja", "Conv2dSame", {"kernel_size": 3}, {"weight": "w"}, "conv")
    assert padded_form(same) is None  # (sized at run time: not a fixed pad)
    linear = Layer("ops/linear.py.jinja", "nn.Linear", {"in_features": 2}, {"weight": "w"}, "fc")
    assert padded_form(linear) is None
    # the same function, with the helper as model.py writes it (a symmetric pad is the
    # convolution's own padding: no F.pad copy)
    torch.manual_seed(0)
    for rank, padding, pad in [(2, (1, 2), (2, 2, 1, 1)), (1, (2,), (2, 2)),
                               (3, (1, 0, 2), (2, 2, 0, 0, 1, 1)), (2, None, (0, 1, 2, 0))]:
        helper = _helper(f"PaddedConv{rank}d", tmp_path)(4, 4, kernel_size=3, pad=pad, groups=4, bias=False)
        assert (helper.pad == ()) == (padding is not None)
        plain = getattr(torch.nn, f"Conv{rank}d")(4, 4, kernel_size=3, padding=padding or 0,
                                                   groups=4, bias=False)
        plain.load_state_dict(helper.state_dict())
        x = torch.randn(2, 4, *[7, 9, 5][:rank])
        if padding is None:  # asymmetric: F.pad first
            expected = plain(torch.nn.functional.pad(x, pad))
        else:
            expected = plain(x)
        torch.testing.assert_close(helper(x), expected, rtol=0, atol=0)


def _helper(name: str, folder):
    """The helper class as model.py writes it (helpers.py.jinja), imported from a file."""
    import importlib.util

    from codegen.backends.pytorch.render import environment

    text = str(getattr(environment().get_template("helpers.py.jinja").module, name)())
    path = folder / f"{name}.py"
    path.write_text("from __future__ import annotations\n\nimport torch\n"
                    "import torch.nn.functional as F\nfrom torch import nn\n" + text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


# (stride, kernel, residual) of each block
BLOCKS = [(2, 3, False), (1, 3, True), (1, 3, True), (2, 5, False), (1, 5, True),
          (1, 5, True), (1, 3, True), (2, 3, False)]


def test_strided_and_unstrided_inverted_residuals_are_one_class(tmp_path):
    """Keras blocks `block_<i>_expand`, `..._depthwise` (a ZeroPadding2D before the strided
    ones, 'same' padding on the others), `..._project`: one class with `stride` and `pad`
    arguments, the same numbers as TensorFlow, and the same file and keys on a rebuild."""
    from codegen.frontends.tensorflow.compat import import_tf
    from codegen.frontends.tensorflow.to_ir import to_ir

    import_tf()
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 1, name="stem")(inputs)
    for i, (stride, kernel, residual) in enumerate(BLOCKS):
        y = x if i == 0 else layers.ReLU(name=f"block_{i}_expand_relu")(  # (optional)
            layers.BatchNormalization(name=f"block_{i}_expand_bn")(
                layers.Conv2D(16, 1, use_bias=False, name=f"block_{i}_expand")(x)))
        if stride == 2:
            y = layers.ZeroPadding2D(((0, kernel // 2), (0, kernel // 2)), name=f"block_{i}_pad")(y)
        y = layers.DepthwiseConv2D(kernel, strides=stride, use_bias=False,
                                   padding="valid" if stride == 2 else "same",
                                   name=f"block_{i}_depthwise")(y)
        y = layers.ReLU(name=f"block_{i}_depthwise_relu")(
            layers.BatchNormalization(name=f"block_{i}_depthwise_bn")(y))
        y = layers.BatchNormalization(name=f"block_{i}_project_bn")(
            layers.Conv2D(8, 1, use_bias=False, name=f"block_{i}_project")(y))
        x = layers.Add(name=f"block_{i}_add")([x, y]) if residual else y
    outputs = layers.Dense(5, name="head")(layers.GlobalAveragePooling2D(name="pool")(x))
    model = keras.Model(inputs, outputs)
    for layer in model.layers:  # statistics away from 0 / 1, so a misplaced BN shows
        if isinstance(layer, layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(RNG.uniform(-0.5, 0.5, channels).astype(np.float32))
            layer.moving_variance.assign(RNG.uniform(0.5, 2, channels).astype(np.float32))
    model.export(str(tmp_path / "saved"), verbose=False)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    text = (tmp_path / "model" / "model.py").read_text()

    images = RNG.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    expected = model(images).numpy()
    for fused in (True, False):
        with torch.no_grad():
            ours = import_generated(tmp_path / "model").load_model(fused=fused)(
                torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
        assert np.abs(ours - expected).max() <= 1e-4 * np.abs(expected).max()
    fused = import_generated(tmp_path / "model").load_model()
    # the BatchNorm of the optional expansion is fused too, where the block has it
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()), fused
    names = [name for name in classes_of(text) if name not in ("FusedIntoConv", "PaddedConv2d")]
    assert len(names) == 2, (names, text)  # the block and the model
    block = text.split(f"class {names[0]}")[1].split("\nclass ")[0]
    assert "PaddedConv2d(" in block and "stride=stride" in block and "pad=pad" in block, block
    assert "use_residual" in block and "use_expand" in block, block
    assert '("expand", "expand_bn")' in block, block
    assert re.search(r"\(2, 2, 2, 2\)", text) and re.search(r"\(0, 2, 0, 2\)", text), text
    assert max(forward_lengths(text)) <= 15, text

    build(tmp_path / "ir", tmp_path / "again", quiet=True)
    assert (tmp_path / "model" / "model.py").read_bytes() == (tmp_path / "again" / "model.py").read_bytes()
    keys = sorted(p.name for p in (tmp_path / "model" / "weights").glob("*.npy"))
    assert keys == sorted(p.name for p in (tmp_path / "again" / "weights").glob("*.npy"))
    assert any(re.match(r"blocks?[._]3\.depthwise\.weight", key) for key in keys), keys


class Eager(Builder):
    """test_blocks.Builder that also computes each value on one input, as numpy."""

    def __init__(self, ir_dir, width: int, x: np.ndarray) -> None:
        super().__init__(ir_dir, width)
        self.env = {"x:0": x}

    def dense(self, ref: str, out: int | None = None, width: int | None = None) -> str:
        result = super().dense(ref, out, width)
        self.env[result] = self.env[ref] @ self.values[result[:-2]]
        return result

    def op(self, op: str, *refs: str) -> str:
        result = super().op(op, *refs)
        values = [self.env[ref] for ref in refs]
        self.env[result] = np.maximum(values[0], 0) if op == "relu" else values[0] + values[1]
        return result

    def concat(self, *refs: str) -> str:
        name = self.name("concat")
        self.nodes.append(Node(name, "concat", list(refs), [TensorInfo([None, self.width * len(refs)])],
                               attrs={"axis": 1}, scope=name))
        self.env[f"{name}:0"] = np.concatenate([self.env[ref] for ref in refs], axis=1)
        return f"{name}:0"


def nasnet_like(b: Eager, cells: int) -> str:
    """Cells that read the two cells before them: relu, dense on each (`h`, `a`), five
    branches, and the five concatenated (as NASNet's cells end)."""
    before, previous = ("x:0", b.width), (b.op("relu", b.dense("x:0")), b.width)
    for _ in range(cells):
        h = b.dense(b.op("relu", previous[0]), width=previous[1])
        a = b.dense(b.op("relu", before[0]), width=before[1])
        s1 = b.op("add", b.op("relu", b.dense(h)), b.op("relu", b.dense(a)))
        s2 = b.op("add", b.op("relu", b.dense(s1)), b.op("relu", b.dense(h)))
        s3 = b.op("add", b.op("relu", b.dense(s2)), b.op("relu", b.dense(a)))
        s4 = b.op("add", b.op("relu", b.dense(s3)), a)
        s5 = b.op("add", b.op("relu", b.dense(s4)), h)
        before, previous = previous, (b.concat(s1, s2, s3, s4, s5), 5 * b.width)
    return b.dense(previous[0], out=3, width=previous[1])


def test_the_last_cell_keeps_its_own_first_layers(tmp_path):
    """NASNet-like cells (`nasnet_like`). The last cell's newest input is read by nothing
    else, so a cut falls after its relu, dense on it; those still join the cell (blocks.py,
    `_join_short`): every cell is one class, the last one too, and no module holds a
    lone relu, dense."""
    x = RNG.normal(size=(4, 8)).astype(np.float32)
    b = Eager(tmp_path / "ir", 8, x)
    output = nasnet_like(b, cells=6)
    b.graph(output)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    text = (tmp_path / "model" / "model.py").read_text()
    with torch.no_grad():
        ours = import_generated(tmp_path / "model").load_model()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, b.env[output], rtol=1e-4, atol=1e-4)
    model = text.split("class Model")[1]
    calls = [name for name in re.findall(r"self\.\w+ = (\w+)\(", model) if name in classes_of(text)]
    assert len(calls) == 6 and len(set(calls)) == 1, (calls, text)  # (and nothing else)
    assert max(forward_lengths(text)) <= 25, text
