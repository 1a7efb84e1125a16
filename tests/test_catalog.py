"""The op catalogue (ir_schema/ops.json) is the one list of IR ops: every entry is complete.

Adding an IR op is one catalogue entry, one handler, one template and one test; these tests
walk the catalogue so that an op missing any of its parts fails here, in the fast suite,
instead of at a user's build (a missing layout rule used to mean silent permutes around the
op; a missing template branch used to blame the user's --templates). No TensorFlow needed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codegen.backends.pytorch.ops import RENDERERS
from codegen.backends.pytorch.render import environment
from codegen.ir.passes.layout import LayoutPass
from codegen.resources import op_catalogue, templates_dir

LAYOUTS = {"elementwise", "per_channel", "broadcast", "pooling", "axes", "weights", "opaque",
           "none"}
OPS = sorted(op for op in op_catalogue() if not op.startswith("$"))


@pytest.mark.parametrize("op", OPS)
def test_every_op_is_complete(op):
    spec = op_catalogue()[op]
    assert spec["layout"] in LAYOUTS, f"{op}: layout must be one of {sorted(LAYOUTS)}"
    if spec["layout"] in ("axes", "weights"):
        assert hasattr(LayoutPass, f"visit_{op}"), f"{op}: needs LayoutPass.visit_{op}"
    assert op in RENDERERS, f"{op}: no renderer in codegen/backends/pytorch/ops.py"
    assert (templates_dir() / spec["template"]).is_file(), f"{op}: {spec['template']} missing"
    module = environment().get_template(spec["template"]).module
    assert hasattr(module, "init") or hasattr(module, "forward"), spec["template"]


def _digamma(x: np.ndarray) -> np.ndarray:
    """psi(x): the reflection for x < 0.5, then recurrence up to 6 and the asymptotic series."""
    x = x.astype(np.float64)
    reflect = x < 0.5
    y = np.where(reflect, 1 - x, x)
    total = np.zeros_like(y)
    for _ in range(6):
        total -= np.where(y < 6, 1 / y, 0)
        y = np.where(y < 6, y + 1, y)
    series = np.log(y) - 1 / (2 * y) - 1 / (12 * y**2) + 1 / (120 * y**4) - 1 / (252 * y**6)
    return np.where(reflect, total + series - np.pi / np.tan(np.pi * x), total + series)


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Newton's method on math.erf."""
    erf = np.vectorize(math.erf)
    x = np.zeros_like(y, dtype=np.float64)
    for _ in range(30):
        x -= (erf(x) - y) / (2 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


# numpy references for the ops whose code is the catalogue's form (a function / an operator)
UNARY = {
    "relu": lambda x: np.maximum(x, 0), "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "hard_swish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "softplus": lambda x: np.log1p(np.exp(x)), "rsqrt": lambda x: 1 / np.sqrt(np.abs(x)),
    "sqrt": lambda x: np.sqrt(np.abs(x)), "neg": np.negative, "exp": np.exp,
    "log": lambda x: np.log(np.abs(x)), "erf": np.vectorize(math.erf),
    "erfc": np.vectorize(math.erfc), "square": np.square, "abs": np.abs,
    "sign": np.sign, "ceil": np.ceil, "floor": np.floor, "round": np.round,  # halves to even
    "zeros_like": np.zeros_like, "ones_like": np.ones_like,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "expm1": np.expm1, "log1p": np.log1p,
    "reciprocal": np.reciprocal, "softsign": lambda x: x / (1 + np.abs(x)),
    "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite, "logical_not": np.logical_not,
    "lgamma": np.vectorize(math.lgamma), "digamma": lambda x: _digamma(x),
    "erfinv": lambda x: _erfinv(x), "ndtri": lambda x: math.sqrt(2) * _erfinv(2 * x - 1),
    "bessel_i0e": lambda x: np.i0(x) * np.exp(-np.abs(x)),
    "bitwise_not": lambda x: np.invert(x),
    "det": np.linalg.det,  # (given a stack of 2 x 2 matrices)
}
POSITIVE = {"rsqrt", "sqrt", "log"}  # given |x|
INTEGER = {"bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift"}
DOMAIN = {"asin": np.tanh, "acos": np.tanh, "atanh": np.tanh, "erfinv": np.tanh,
          "ndtri": lambda x: 0.5 + 0.45 * np.tanh(x), "acosh": lambda x: 1 + np.abs(x),
          "log1p": np.abs}  # the input moved into the op's domain (for both sides)
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "maximum": np.maximum, "minimum": np.minimum, "not_equal": np.not_equal,
    "atan2": np.arctan2, "floor_div": np.floor_divide, "floor_mod": np.mod, "fmod": np.fmod,
    "greater": np.greater, "greater_equal": np.greater_equal, "less_equal": np.less_equal,
    "equal": np.equal, "logical_or": np.logical_or, "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor, "left_shift": np.left_shift,
    "right_shift": np.right_shift, "xlogy": lambda a, b: a * np.log(b),
    "squared_difference": lambda a, b: (a - b) ** 2, "pow": lambda a, b: np.abs(a) ** b,
}


def form_ops() -> list[str]:
    return [op for op in OPS if {"form", "operator"} & set(op_catalogue()[op])]


def test_every_form_op_has_a_reference():
    assert sorted(form_ops()) == sorted([*UNARY, *BINARY])


@pytest.mark.parametrize("op", form_ops())
def test_form_op_renders_and_computes_its_reference(op):
    """Render the op as the generated forward writes it, run it, compare with numpy."""
    from codegen.backends.pytorch.ops import elementwise
    from codegen.ir.graph import Node, TensorInfo

    attrs = {"alpha": 0.2} if op == "leaky_relu" else {}
    inputs = ["a:0"] if op in UNARY else ["a:0", "b:0"]
    node = Node("n", op, inputs, [TensorInfo([2, 3])], attrs=attrs)
    render = elementwise(node, None)
    forms = {key: value for key, value in render.attrs.items() if key in ("kind", "form", "operator")}
    data = {key: repr(value) for key, value in render.attrs.items() if key not in forms}
    macro = environment().get_template(render.template).module.forward
    text = str(macro(["a", "b"][: len(inputs)], {**forms, **data}))
    rng = np.random.default_rng(0)
    a = rng.uniform(-2, 2, (2, 3)).astype(np.float32)
    b = rng.uniform(0.5, 2, (2, 3)).astype(np.float32)
    if op in POSITIVE or op == "pow":
        a = np.abs(a) + 0.1
    a = DOMAIN.get(op, lambda x: x)(a).astype(np.float32)
    if op in INTEGER:  # bitwise ops: small integers (shifts by 0..3)
        a, b = (a * 4).astype(np.int32), np.abs(b * 2).astype(np.int32)
    if op == "det":  # a stack of square matrices
        a = rng.uniform(-2, 2, (3, 2, 2)).astype(np.float32)
    ours = eval(text, {"torch": torch, "F": F, "a": torch.from_numpy(a), "b": torch.from_numpy(b)})
    expected = UNARY[op](a) if op in UNARY else BINARY[op](a, b)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=text)


# numpy references for the spectral ops (their renderer picks torch.fft's function)
SPECTRAL = {
    ("fft", "fft", None): np.fft.fft, ("fft", "ifft", None): np.fft.ifft,
    ("fft", "fft2", None): np.fft.fft2, ("fft", "ifft2", None): np.fft.ifft2,
    ("fft", "rfft", None): np.fft.rfft, ("fft", "rfft", (5,)): lambda x: np.fft.rfft(x, 5),
    ("fft", "irfft", (7,)): lambda x: np.fft.irfft(x, 7), ("fft", "irfft", None): np.fft.irfft,
    ("fft", "rfft2", None): np.fft.rfft2, ("fft", "irfft2", (4, 6)): lambda x: np.fft.irfft2(x, (4, 6)),
    ("real", None, None): np.real, ("imag", None, None): np.imag,
    ("cast", None, None): lambda x: x.astype(np.complex64),
}


@pytest.mark.parametrize("case", SPECTRAL, ids=lambda case: "-".join(map(str, case)))
def test_spectral_op_renders_and_computes_its_reference(case):
    from codegen.backends.pytorch.ops import render_op
    from codegen.ir.graph import Node, TensorInfo

    op, function, n = case
    attrs = {"function": function, **({"n": list(n)} if n else {})} if op == "fft" else {}
    if op == "cast":
        attrs = {"dtype": "complex64"}
    render = render_op(Node("n", op, ["a:0"], [TensorInfo([4, 6])], attrs=attrs), None)
    forms = {key: value for key, value in render.attrs.items() if key == "kind"}
    data = {key: repr(value) for key, value in render.attrs.items() if key != "kind"}
    text = str(environment().get_template(render.template).module.forward(["a"], {**forms, **data}))
    rng = np.random.default_rng(0)
    a = rng.uniform(-2, 2, (4, 6)).astype(np.float32)
    if op in ("real", "imag") or function in ("ifft", "ifft2", "irfft", "irfft2"):
        a = (a + 1j * rng.uniform(-2, 2, (4, 6))).astype(np.complex64)
    ours = eval(text, {"torch": torch, "a": torch.from_numpy(a)})
    np.testing.assert_allclose(ours.numpy(), SPECTRAL[case](a), rtol=1e-4, atol=1e-4, err_msg=text)


def test_complex_renders_torch_complex():
    from codegen.backends.pytorch.ops import render_op
    from codegen.ir.graph import Node, TensorInfo

    render = render_op(Node("n", "complex", ["a:0", "b:0"], [TensorInfo([2], "complex64")]), None)
    text = str(environment().get_template(render.template).module.forward(["a", "b"], render.attrs))
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])
    assert torch.equal(eval(text, {"torch": torch, "a": a, "b": b}), torch.tensor([1 + 3j, 2 - 1j]))


def _run_math(node_op: str, attrs: dict, x: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Render a clamp / cumsum node as forward writes it and run it on x."""
    from codegen.backends.pytorch.ops import render_op
    from codegen.backends.pytorch.render import literal
    from codegen.ir.graph import Node, TensorInfo

    node = Node("n", node_op, ["a:0"], [TensorInfo(list(x.shape), dtype)], attrs=attrs)
    render = render_op(node, None)
    values = {key: value if key == "kind" else literal(value) for key, value in render.attrs.items()}
    text = str(environment().get_template(render.template).module.forward(["a"], values))
    return eval(text, {"torch": torch, "F": F, "a": torch.from_numpy(x)}).numpy()


@pytest.mark.parametrize("bounds", [{"min": -0.5, "max": 1.0}, {"min": 0.0}, {"max": 6.0}])
def test_clamp_computes_clip(bounds):
    x = np.random.default_rng(1).uniform(-2, 8, (2, 3)).astype(np.float32)
    expected = np.clip(x, bounds.get("min"), bounds.get("max"))
    np.testing.assert_array_equal(_run_math("clamp", bounds, x), expected)


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_cumsum_exclusive_and_reverse(axis, exclusive, reverse):
    """TF's Cumsum attributes, with numpy's cumsum as the reference (int32 stays int32)."""
    for x in (np.arange(24, dtype=np.int32).reshape(2, 3, 4),
              np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)):
        flipped = np.flip(x, axis) if reverse else x
        expected = np.cumsum(flipped, axis, dtype=x.dtype)
        if exclusive:
            expected = expected - flipped
        expected = np.flip(expected, axis) if reverse else expected
        attrs = {"axis": axis, "exclusive": exclusive, "reverse": reverse}
        ours = _run_math("cumsum", attrs, x, str(x.dtype))
        assert ours.dtype == x.dtype
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


# -- fake quantization and detection ops (i23-quant): the rendered call and its generated
# helper against a numpy reference written from TF's kernels -----------------------------------
def _run_helper_op(op: str, attrs: dict, arrays: list[np.ndarray], out_shape=(1,), outputs=None):
    """`outputs` (TensorInfos) given: rendered with a graph whose inputs are the arrays."""
    from codegen.backends.pytorch.ops import render_op
    from codegen.backends.pytorch.render import literal
    from codegen.ir.graph import Graph, GraphInput, Node, TensorInfo

    names = [f"a{i}" for i in range(len(arrays))]
    node = Node("n", op, [f"{name}:0" for name in names], outputs or [TensorInfo(list(out_shape))],
                attrs=attrs)
    graph = Graph([GraphInput(name, list(a.shape), a.dtype.name) for name, a in zip(names, arrays)],
                  [], {}, {}) if outputs else None
    render = render_op(node, graph)
    values = {key: value if key == "kind" else literal(value) for key, value in render.attrs.items()}
    text = str(environment().get_template(render.template).module.forward(names, values))
    namespace = {"torch": torch, "F": F, **{n: torch.from_numpy(a) for n, a in zip(names, arrays)}}
    helpers = environment().get_template("helpers.py.jinja").module
    for helper in render.helpers:
        exec(str(getattr(helpers, helper)()), namespace)  # noqa: S102 - our own template
    return eval(text, namespace)


def _np_fake_quant(x, low, high, num_bits, narrow):
    f = np.float32
    quant_min, quant_max = f(1 if narrow else 0), f(2**num_bits - 1)
    scale = (f(high) - f(low)) / (quant_max - quant_min)
    inv_scale = (quant_max - quant_min) / (f(high) - f(low))
    zero = quant_min - f(low) / scale
    zero = quant_min if zero < quant_min else quant_max if zero > quant_max else f(math.floor(zero + 0.5))
    nudged_min, nudged_max = (quant_min - zero) * scale, (quant_max - zero) * scale
    quant_zero = np.floor(-nudged_min * inv_scale + f(0.5))
    clamped = np.clip(x, nudged_min, nudged_max)
    return (np.floor((clamped - nudged_min) * inv_scale - quant_zero + f(0.5)) * scale).astype(f)


def _np_quantize_dequantize(x, num_bits, signed, narrow, half_to_even, low=None, high=None):
    f = np.float32
    given = low is not None
    low, high = (f(low), f(high)) if given else (x.min(), x.max())
    quant_min = (-(2 ** (num_bits - 1)) + narrow) if signed else 0
    quant_max = 2 ** (num_bits - 1) - 1 if signed else 2**num_bits - 1
    big = np.finfo(f).max
    from_min = f(quant_min) / low if quant_min * low > 0 else big
    from_max = f(quant_max) / high if quant_max * high > 0 else big
    if from_min < from_max:
        scale, inverse = from_min, low / f(quant_min)
        high = f(quant_max) * inverse
    else:
        scale, inverse = from_max, high / f(quant_max)
        low = f(quant_min) * inverse
    y = (np.clip(x, low, high) if given else x) * scale
    y = np.round(y) if half_to_even else np.floor(y + f(0.5))
    return (y * inverse).astype(f)


FAKE_QUANT = [(-6.0, 6.0, 8, False), (-0.1, 2.3, 3, False), (0.0, 2.0, 8, True), (-2.5, 2.5, 4, True)]


@pytest.mark.parametrize("low, high, num_bits, narrow", FAKE_QUANT)
def test_fake_quant_computes_its_reference(low, high, num_bits, narrow):
    x = np.concatenate([np.random.default_rng(4).normal(0, 3, 40), np.arange(-8, 8) * 0.25])
    x = x.astype(np.float32)
    attrs = {"num_bits": num_bits, "narrow_range": narrow, "min": low, "max": high}
    ours = _run_helper_op("fake_quant", attrs, [x]).numpy()
    np.testing.assert_array_equal(ours, _np_fake_quant(x, low, high, num_bits, narrow))


QDQ = [(8, True, False, True, None), (8, True, True, False, (-127.0, 127.0)),
       (4, False, False, True, (0.0, 3.0)), (6, True, False, False, None),
       (8, True, True, True, (-127.0, 127.0))]


@pytest.mark.parametrize("num_bits, signed, narrow, even, bounds", QDQ)
def test_quantize_dequantize_computes_its_reference(num_bits, signed, narrow, even, bounds):
    x = np.concatenate([np.random.default_rng(5).normal(0, 40, 40), np.arange(-9, 9) * 0.5])
    x = x.astype(np.float32)
    if not signed:
        x = np.abs(x)
    attrs = {"num_bits": num_bits, "signed": signed, "narrow_range": narrow, "half_to_even": even}
    if bounds:
        attrs.update(min=bounds[0], max=bounds[1], range_given=True)
    ours = _run_helper_op("quantize_dequantize", attrs, [x]).numpy()
    low, high = bounds or (None, None)
    np.testing.assert_array_equal(ours, _np_quantize_dequantize(x, num_bits, signed, narrow, even,
                                                                low, high))


def test_per_channel_fake_quantization_computes_its_reference():
    """One range per channel of the last axis (FakeQuantWithMinMaxVarsPerChannel) and per
    index of `axis` (QuantizeAndDequantize with axis), as inputs: each column as above."""
    x = np.random.default_rng(6).normal(0, 3, (20, 3)).astype(np.float32)
    low, high = np.array([-6.0, -0.1, 0.0], np.float32), np.array([6.0, 2.3, 2.0], np.float32)
    ours = _run_helper_op("fake_quant_per_channel", {"num_bits": 8, "narrow_range": False},
                          [x, low, high]).numpy()
    for c in range(3):
        np.testing.assert_array_equal(ours[:, c], _np_fake_quant(x[:, c], low[c], high[c], 8, False))
    attrs = {"num_bits": 8, "signed": True, "narrow_range": False, "half_to_even": True, "axis": 1}
    ours = _run_helper_op("quantize_dequantize_per_channel", attrs, [x]).numpy()
    given = _run_helper_op("quantize_dequantize_per_channel", {**attrs, "range_given": True},
                           [x, low, high]).numpy()
    for c in range(3):
        np.testing.assert_array_equal(ours[:, c], _np_quantize_dequantize(x[:, c], 8, True, False,
                                                                          True))
        np.testing.assert_array_equal(given[:, c], _np_quantize_dequantize(
            x[:, c], 8, True, False, True, low[c], high[c]))


def test_table_ops_compute_their_references():
    """InvertPermutation, ReverseSequence and Unique (in order of first appearance)."""
    perm = np.array([3, 0, 4, 1, 2], np.int32)
    inverse = _run_helper_op("invert_permutation", {}, [perm]).numpy()
    assert inverse.dtype == np.int32 and np.array_equal(inverse[perm], np.arange(5))
    x = np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2)
    lengths = np.array([0, 3, 5], np.int32)
    ours = _run_helper_op("reverse_sequence", {"seq_dim": 1, "batch_dim": 0}, [x, lengths])
    expected = x.copy()
    for row, length in enumerate(lengths):
        expected[row, :length] = x[row, :length][::-1]
    np.testing.assert_array_equal(ours.numpy(), expected)
    ids = np.array([5, 2, 5, 7, 2, 2, 9], np.int32)
    values, index, counts = _run_helper_op("unique", {"counts": True}, [ids])
    assert values.tolist() == [5, 2, 7, 9] and index.tolist() == [0, 1, 0, 2, 1, 1, 3]
    assert counts.tolist() == [2, 3, 1, 1]


# the counting, partition, argmax-pooling and HSV ops (tested at the end of this file)
COUNTING_OPS = {"bincount", "dynamic_partition", "dynamic_stitch", "max_pool_with_argmax",
                "adjust_hue", "adjust_saturation"}
# the ops of generated helpers tested here without TF (tests/test_ir_ops.py counts them)
HELPER_OPS = {"fake_quant", "fake_quant_per_channel", "quantize_dequantize",
              "quantize_dequantize_per_channel", "crop_and_resize", "non_max_suppression",
              "space_to_batch", "batch_to_space", "invert_permutation", "reverse_sequence",
              "unique", "combined_non_max_suppression", "lstm_block_cell", *COUNTING_OPS}


def _np_crop_and_resize(image, boxes, indices, size, method, extrapolation):
    height, width = image.shape[1:3]
    out = np.full((len(boxes), *size, image.shape[3]), extrapolation, np.float32)
    for b, (y1, x1, y2, x2) in enumerate(boxes.astype(np.float64)):
        for i in range(size[0]):
            y = y1 * (height - 1) + i * (y2 - y1) * (height - 1) / (size[0] - 1) if size[0] > 1 \
                else 0.5 * (y1 + y2) * (height - 1)
            for j in range(size[1]):
                x = x1 * (width - 1) + j * (x2 - x1) * (width - 1) / (size[1] - 1) if size[1] > 1 \
                    else 0.5 * (x1 + x2) * (width - 1)
                if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                    continue
                img = image[indices[b]]
                if method == "nearest":
                    out[b, i, j] = img[math.floor(y + 0.5), math.floor(x + 0.5)]
                    continue
                t, lo, le, r = math.floor(y), math.ceil(y), math.floor(x), math.ceil(x)
                top = img[t, le] + (img[t, r] - img[t, le]) * (x - le)
                bottom = img[lo, le] + (img[lo, r] - img[lo, le]) * (x - le)
                out[b, i, j] = top + (bottom - top) * (y - t)
    return out


@pytest.mark.parametrize("method, size, extrapolation", [("bilinear", (3, 4), 0.0),
                                                          ("nearest", (4, 3), -1.0),
                                                          ("bilinear", (1, 1), 2.0)])
def test_crop_and_resize_computes_its_reference(method, size, extrapolation):
    rng = np.random.default_rng(6)
    image = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    boxes = rng.uniform(-0.3, 1.2, (4, 4)).astype(np.float32)
    indices = np.array([0, 1, 1, 0], np.int32)
    attrs = {"crop_size": list(size), "method": method, "extrapolation_value": extrapolation}
    ours = _run_helper_op("crop_and_resize", attrs, [image, boxes, indices]).numpy()
    expected = _np_crop_and_resize(image, boxes, indices, size, method, extrapolation)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def _np_nms(boxes, scores, size, iou_threshold, score_threshold):
    def iou(a, b):
        (ay1, ax1, ay2, ax2), (by1, bx1, by2, bx2) = a, b
        area_a = (max(ay1, ay2) - min(ay1, ay2)) * (max(ax1, ax2) - min(ax1, ax2))
        area_b = (max(by1, by2) - min(by1, by2)) * (max(bx1, bx2) - min(bx1, bx2))
        if area_a <= 0 or area_b <= 0:
            return 0.0
        h = max(min(max(ay1, ay2), max(by1, by2)) - max(min(ay1, ay2), min(by1, by2)), 0)
        w = max(min(max(ax1, ax2), max(bx1, bx2)) - max(min(ax1, ax2), min(bx1, bx2)), 0)
        return h * w / (area_a + area_b - h * w)

    kept = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if len(kept) < size and scores[i] > score_threshold and all(
                iou(boxes[i], boxes[j]) <= iou_threshold for j in kept):
            kept.append(i)
    return np.array(kept, np.int32)


@pytest.mark.parametrize("iou_threshold, score_threshold, size", [(0.5, float("-inf"), 6),
                                                                  (0.2, 0.4, 10), (0.7, 0.0, 2)])
def test_non_max_suppression_computes_its_reference(iou_threshold, score_threshold, size):
    rng = np.random.default_rng(7)
    boxes = rng.normal(0, 1, (15, 4)).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, 15) * 4).astype(np.float32) / 4  # ties too
    attrs = {"max_output_size": size, "iou_threshold": iou_threshold,
             "score_threshold": score_threshold, "pad": False, "outputs": "indices"}
    ours = _run_helper_op("non_max_suppression", attrs, [boxes, scores]).numpy()
    assert ours.dtype == np.int32
    np.testing.assert_array_equal(ours, _np_nms(boxes, scores, size, iou_threshold, score_threshold))


def _np_combined_nms(boxes, scores, per_class, total, iou_threshold, score_threshold,
                     pad_per_class, clip):
    """TF's kernel: per image and class _np_nms, the found boxes and the unfilled slots
    (score -1, class -1, box 0) ranked by score, the first min(found, size) kept."""
    classes = scores.shape[2]
    size = min(total, per_class * classes) if pad_per_class else total
    slots = min(per_class, scores.shape[1]) * classes
    out_boxes = np.zeros((len(scores), size, 4), np.float32)
    out_scores, out_classes = np.zeros((2, len(scores), size), np.float32)
    valid = np.zeros(len(scores), np.int32)
    for n in range(len(scores)):
        found = []
        for c in range(classes):
            class_boxes = boxes[n, :, c if boxes.shape[2] > 1 else 0]
            kept = _np_nms(class_boxes, scores[n, :, c], min(per_class, scores.shape[1]),
                           iou_threshold, score_threshold)
            found += [(scores[n, i, c], c, class_boxes[i]) for i in kept]
        count = min(len(found), size)
        ranked = sorted(found + [(-1.0, -1, np.zeros(4, np.float32))] * (slots - len(found)),
                        key=lambda entry: -entry[0])[:count]
        for j, (score, c, box) in enumerate(ranked):
            out_boxes[n, j] = np.clip(box, 0, 1) if clip else box
            out_scores[n, j], out_classes[n, j] = score, c
        valid[n] = count
    return out_boxes, out_scores, out_classes, valid


@pytest.mark.parametrize("per_class, total, pad_per_class, clip, q", [
    (3, 6, False, True, 1), (2, 20, True, False, 3), (4, 3, False, True, 3)])
def test_combined_non_max_suppression_computes_its_reference(per_class, total, pad_per_class,
                                                            clip, q):
    rng = np.random.default_rng(8)
    boxes = rng.uniform(-0.2, 1.2, (2, 9, q, 4)).astype(np.float32)
    scores = rng.uniform(-1.5, 1, (2, 9, 3)).astype(np.float32)  # some below the -1 slots
    attrs = {"max_output_size_per_class": per_class, "max_total_size": total,
             "iou_threshold": 0.4, "score_threshold": float("-inf"),
             "pad_per_class": pad_per_class, "clip_boxes": clip}
    ours = _run_helper_op("combined_non_max_suppression", attrs, [boxes, scores])
    expected = _np_combined_nms(boxes, scores, per_class, total, 0.4, float("-inf"),
                                pad_per_class, clip)
    assert ours[3].dtype == torch.int32
    for mine, reference in zip(ours, expected):
        np.testing.assert_allclose(mine.numpy(), reference, rtol=1e-6)


def _np_lstm_block_cell(x, cs_prev, h_prev, w, wci, wcf, wco, b, forget_bias, cell_clip,
                        peephole):
    """TF's LSTMBlockCell kernel (gates i, ci, f, o) in float64."""
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    x, cs_prev, h_prev, w, wci, wcf, wco, b = (a.astype(np.float64) for a in (
        x, cs_prev, h_prev, w, wci, wcf, wco, b))
    if not peephole:
        wci = wcf = wco = np.zeros_like(wci)
    i, ci, f, o = np.split(np.concatenate([x, h_prev], 1) @ w + b, 4, axis=1)
    i, ci, f = sigmoid(i + cs_prev * wci), np.tanh(ci), sigmoid(f + forget_bias + cs_prev * wcf)
    cs = i * ci + f * cs_prev
    if cell_clip is not None:
        cs = np.clip(cs, -cell_clip, cell_clip)
    co = np.tanh(cs)
    o = sigmoid(o + cs * wco)
    return i, cs, f, o, ci, co, o * co


@pytest.mark.parametrize("forget_bias, cell_clip, peephole", [(1.0, 3.0, False), (0.5, None, True),
                                                              (0.0, 0.4, True)])
def test_lstm_block_cell_computes_its_reference(forget_bias, cell_clip, peephole):
    rng = np.random.default_rng(9)
    arrays = [rng.normal(0, 1, shape).astype(np.float32) for shape in (
        (3, 5), (3, 4), (3, 4), (9, 16), (4,), (4,), (4,), (16,))]
    arrays[1] *= 3  # cell states beyond the clip
    attrs = {"forget_bias": forget_bias, "use_peephole": peephole}
    if cell_clip is not None:
        attrs["cell_clip"] = cell_clip
    ours = _run_helper_op("lstm_block_cell", attrs, arrays)
    expected = _np_lstm_block_cell(*arrays, forget_bias, cell_clip, peephole)
    assert len(ours) == 7
    for mine, reference in zip(ours, expected):
        np.testing.assert_allclose(mine.numpy(), reference, rtol=1e-5, atol=1e-6)


def _np_space_to_batch(x, block, pads):
    """TF's documented algorithm: pad, reshape, permute, reshape."""
    x = np.pad(x, [(0, 0), *pads] + [(0, 0)] * (x.ndim - 1 - len(block)))
    spatial = x.shape[1:1 + len(block)]
    shape = [x.shape[0]] + [d for s, b in zip(spatial, block) for d in (s // b, b)] + list(
        x.shape[1 + len(block):])
    m = len(block)
    perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)] + list(
        range(1 + 2 * m, len(shape)))
    y = x.reshape(shape).transpose(perm)
    return y.reshape([-1] + [s // b for s, b in zip(spatial, block)] + list(x.shape[1 + m:]))


@pytest.mark.parametrize("block, pads, shape", [([2, 3], [[0, 0], [1, 2]], (2, 4, 6, 3)),
                                                ([2], [[1, 1]], (3, 4, 2))])
def test_space_to_batch_and_back(block, pads, shape):
    x = np.random.default_rng(8).normal(size=shape).astype(np.float32)
    expected = _np_space_to_batch(x, block, pads)
    attrs = {"block_shape": block, "paddings": pads}
    ours = _run_helper_op("space_to_batch", attrs, [x], expected.shape).numpy()
    np.testing.assert_array_equal(ours, expected)
    back = _run_helper_op("batch_to_space", {"block_shape": block, "crops": pads}, [expected],
                          shape).numpy()
    np.testing.assert_array_equal(back, x)
# numpy references of the slicing ops (handlers/slicing.py): (op, attrs, reference of x)
X = np.arange(2 * 6 * 4, dtype=np.int32).reshape(2, 6, 4)
SLICING = [
    ("unbind", {"axis": 1}, lambda x: [x[:, i] for i in range(6)]),
    ("unbind", {"axis": 2}, lambda x: [x[..., i] for i in range(4)]),
    ("split", {"axis": 1, "chunks": 3}, lambda x: np.split(x, 3, axis=1)),
    ("split", {"axis": 1, "chunks": 3, "sizes": [1, 3, 2]}, lambda x: np.split(x, [1, 4], axis=1)),
    ("index", {"items": [[None, None, 1], None, [1, -1, 2], 3]}, lambda x: x[:, None, 1:-1:2, 3]),
    ("index", {"items": [0, [None, None, 1], [1, None, 2]]}, lambda x: x[0, :, 1::2]),
    ("index", {"items": [[None, None, 1], [None, None, 1], None, -1]}, lambda x: x[..., None, -1]),
    ("index", {"items": [[None, None, 1], 2, [None, None, 1]]}, lambda x: x[:, 2]),
    ("roll", {"shifts": [2], "axes": [1]}, lambda x: np.roll(x, 2, 1)),
    ("roll", {"shifts": [-1, 5], "axes": [0, 2]}, lambda x: np.roll(x, (-1, 5), (0, 2))),
    ("broadcast_to", {"shape": [3, 2, 6, 4]}, lambda x: np.broadcast_to(x, (3, 2, 6, 4))),
]


def _run_slicing(render, x: np.ndarray):
    from codegen.backends.pytorch.render import literal

    values = {key: value if key == "kind" else literal(value) for key, value in render.attrs.items()}
    module = environment().get_template(render.template).module
    text = str(module.forward(["a"], values))
    scope = {"torch": torch, "F": F, "a": torch.from_numpy(x)}
    helpers = environment().get_template("helpers.py.jinja").module
    for helper in render.helpers:  # defined as model.py defines it: our own template's text
        exec(str(getattr(helpers, helper)()), scope)  # noqa: S102
    result = eval(text, scope)
    return [part.numpy() for part in result] if isinstance(result, tuple) else result.numpy()


@pytest.mark.parametrize("op, attrs, reference", SLICING,
                         ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(SLICING)])
def test_slicing_op_computes_its_reference(op, attrs, reference):
    from codegen.backends.pytorch.ops import render_op
    from codegen.ir.graph import Node, TensorInfo

    outputs = reference(X)
    infos = [TensorInfo(list(np.shape(o)), "int32") for o in (
        outputs if isinstance(outputs, list) else [outputs])]
    ours = _run_slicing(render_op(Node("n", op, ["a:0"], infos, attrs=attrs), None), X)
    for mine, expected in zip(ours if isinstance(outputs, list) else [ours],
                              outputs if isinstance(outputs, list) else [outputs], strict=True):
        np.testing.assert_array_equal(mine, expected)


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
@pytest.mark.parametrize("pads", [[[0, 0], [2, 3], [1, 2]], [[1, 1], [0, 0], [3, 0]]])
def test_mirror_pad_helper_computes_numpy_pad(mode, pads):
    """TF's MirrorPad REFLECT / SYMMETRIC are numpy's reflect / symmetric, on any axes."""
    from codegen.backends.pytorch.slicing_ops import mirror_pad

    render = mirror_pad(pads, mode, X.ndim, "bool")  # (F.pad has no bool reflect: the helper)
    for x in (X, X % 3 == 0):
        np.testing.assert_array_equal(_run_slicing(render, x), np.pad(x, pads, mode=mode))


# -- indexing, scatter, segment, sort and matrix ops (backends/pytorch/gather_ops.py) ----------
def _run_indexing(op: str, attrs: dict, *arrays: np.ndarray, rank: int | None = None):
    """Render a node of `op` as forward writes it and run it on `arrays` (a, b, c)."""
    from codegen.backends.pytorch.ops import render_op
    from codegen.backends.pytorch.render import literal
    from codegen.ir.graph import Node, TensorInfo

    names = ["a", "b", "c"][:len(arrays)]
    shape = [1] * (rank if rank is not None else arrays[0].ndim)
    node = Node("n", op, [f"{name}:0" for name in names], [TensorInfo(shape)], attrs=attrs)
    render = render_op(node, None)
    values = {key: value if key == "kind" else literal(value) for key, value in render.attrs.items()}
    text = str(environment().get_template(render.template).module.forward(names, values))
    scope = {"torch": torch, "F": F, **{n: torch.from_numpy(a) for n, a in zip(names, arrays)}}
    result = eval(text, scope)
    return [r.numpy() for r in result] if isinstance(result, tuple) else result.numpy()


RNG = np.random.default_rng(5)
GX = RNG.normal(size=(4, 5, 6)).astype(np.float32)


def _gather_batched(x, ids, axis, batch_dims):
    """TF's gather with batch_dims, by recursion over the batch axes."""
    if batch_dims == 0:
        return np.take(x, ids, axis)
    return np.stack([_gather_batched(x[i], ids[i], axis - 1, batch_dims - 1)
                     for i in range(x.shape[0])])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather_takes_along_axis(axis):
    ids = np.array([[3, 0], [1, 3]], np.int32)
    ours = _run_indexing("gather", {"axis": axis, "batch_dims": 0}, GX, ids)
    np.testing.assert_array_equal(ours, np.take(GX, ids, axis))


@pytest.mark.parametrize("axis, ids", [(1, [[0, 2], [1, 1], [3, 0], [4, 2]]),
                                       (2, [[0, 5, 2], [1, 1, 1], [3, 0, 4], [4, 2, 2]]),
                                       (1, [0, 2, 1, 4]), (2, [[[0, 1], [2, 3]], [[5, 5], [0, 0]],
                                                            [[1, 2], [3, 4]], [[0, 0], [1, 1]]])])
def test_gather_with_batch_dims(axis, ids):
    ids = np.array(ids, np.int32)
    attrs = {"axis": axis, "batch_dims": 1, "rank": 3, "ids_rank": ids.ndim}
    if ids.ndim > 2:
        attrs["sizes"] = list(ids.shape[1:])
    ours = _run_indexing("gather", attrs, GX, ids)
    np.testing.assert_array_equal(ours, _gather_batched(GX, ids, axis, 1))


def test_gather_nd_reads_coordinates():
    ids = np.array([[[1, 2], [0, 0]], [[3, 4], [2, 1]]], np.int32)
    ours = _run_indexing("gather_nd", {}, GX, ids)
    np.testing.assert_array_equal(ours, GX[tuple(np.moveaxis(ids, -1, 0))])


SCATTER_AT = {"add": np.add.at, "sub": np.subtract.at, "max": np.maximum.at, "min": np.minimum.at}


@pytest.mark.parametrize("reduce", ["update", "add", "sub", "max", "min"])
@pytest.mark.parametrize("ids", [[[1], [3], [1]], [[0, 1], [2, 4], [0, 1]]])
def test_tensor_scatter(reduce, ids):
    ids = np.array(ids, np.int32)
    depth = ids.shape[-1]
    rest = list(GX.shape[depth:])
    updates = RNG.normal(size=[len(ids), *rest]).astype(np.float32)
    if reduce == "update":
        ids, updates = ids[:2], updates[:2]  # TF leaves repeated updates unordered
    attrs = {"reduce": reduce, "depth": depth, "batch": 1}
    if reduce in ("max", "min"):
        sizes = GX.shape[:depth]
        attrs.update(strides=[int(np.prod(sizes[i + 1:])) for i in range(depth)], rest=len(rest))
    expected = GX.copy()
    if reduce == "update":
        expected[tuple(ids.T)] = updates
    else:
        SCATTER_AT[reduce](expected, tuple(ids.T), updates)
    np.testing.assert_allclose(_run_indexing("scatter_nd", attrs, GX, ids, updates), expected,
                               rtol=1e-6)


def test_scatter_nd_adds_into_zeros():
    ids, updates = np.array([[1], [3], [1]], np.int32), RNG.normal(size=(3, 6)).astype(np.float32)
    expected = np.zeros((5, 6), np.float32)
    np.add.at(expected, tuple(ids.T), updates)
    attrs = {"reduce": "add", "depth": 1, "batch": 1, "shape": [5, 6]}
    np.testing.assert_allclose(_run_indexing("scatter_nd", attrs, ids, updates, rank=2),
                               expected, rtol=1e-6)


SEGMENT_REFERENCE = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min,
                     "prod": np.prod}


@pytest.mark.parametrize("reduce", sorted(SEGMENT_REFERENCE))
@pytest.mark.parametrize("ids", [[3, 0, 3, 1], [[0, 1, 1, 2, 0], [2, 2, 0, 1, 0],
                                                [1, 1, 1, 1, 1], [0, 0, 0, 0, 2]]])
def test_segment_reduce(reduce, ids):
    ids = np.array(ids, np.int32)
    count, empty = 5, -7.0
    rows, keys = GX.reshape(-1, *GX.shape[ids.ndim:]), ids.reshape(-1)
    expected = np.stack([SEGMENT_REFERENCE[reduce](rows[keys == s], axis=0) if (keys == s).any()
                         else np.full(rows.shape[1:], empty, np.float32) for s in range(count)])
    attrs = {"reduce": reduce, "num_segments": count, "ids_rank": ids.ndim, "rank": 3,
             "empty": empty}
    np.testing.assert_allclose(_run_indexing("segment_reduce", attrs, GX, ids), expected,
                               rtol=1e-5)


def test_nonzero_and_sort():
    mask = GX > 0.5
    np.testing.assert_array_equal(_run_indexing("nonzero", {}, mask, rank=2), np.argwhere(mask))
    ties = RNG.integers(-2, 3, (3, 9)).astype(np.int32)
    values, indices = _run_indexing("sort", {"axis": 1, "descending": True}, ties)
    order = np.argsort(-ties, axis=1, kind="stable")  # equal values: lower index first
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(values, np.take_along_axis(ties, order, 1))


@pytest.mark.parametrize("offset", [0, 2, -1])
def test_diagonals(offset):
    square = GX[:, :3, :3].copy()
    diagonal = _run_indexing("diagonal", {"offset": offset}, GX)
    np.testing.assert_array_equal(diagonal, np.diagonal(GX, offset, -2, -1))
    made = _run_indexing("matrix_diag", {"offset": offset}, GX[:, 0], rank=3)
    size = 6 + abs(offset)
    expected = np.zeros((4, size, size), np.float32)
    for row in range(6):
        i, j = (row, row + offset) if offset >= 0 else (row - offset, row)
        expected[:, i, j] = GX[:, 0, row]
    np.testing.assert_array_equal(made, expected)
    new = RNG.normal(size=np.diagonal(square, offset, -2, -1).shape).astype(np.float32)
    expected = square.copy()
    rows, cols = np.nonzero(np.eye(3, k=offset))
    expected[:, rows, cols] = new
    np.testing.assert_array_equal(_run_indexing("set_diagonal", {"offset": offset}, square, new),
                                  expected)


@pytest.mark.parametrize("bounds", [{"lower": 1, "upper": 2}, {"lower": 0}, {"upper": 0}])
def test_band_part(bounds):
    i, j = np.indices(GX.shape[1:])
    keep = ((i - j <= bounds.get("lower", 99)) & (j - i <= bounds.get("upper", 99)))
    np.testing.assert_array_equal(_run_indexing("band_part", bounds, GX), GX * keep)


@pytest.mark.parametrize("axis", [1, 3])
def test_lrn_sums_squares_over_the_window(axis):
    """TF's LRN: x / (bias + alpha * sum of squares over depth_radius on each side) ** beta."""
    image = RNG.normal(size=(2, 7, 3, 4)).astype(np.float32)  # channels on `axis`
    channels = np.moveaxis(image, axis, -1).astype(np.float64)
    squares = np.stack([(channels[..., max(0, c - 2):c + 3] ** 2).sum(-1)
                        for c in range(channels.shape[-1])], -1)
    expected = np.moveaxis(channels / (1.5 + 0.01 * squares) ** 0.75, -1, axis)
    attrs = {"depth_radius": 2, "bias": 1.5, "alpha": 0.01, "beta": 0.75, "axis": axis}
    np.testing.assert_allclose(_run_indexing("lrn", attrs, image), expected, rtol=1e-5)


@pytest.mark.parametrize("on, off, dtype, axis", [(2.5, -1.0, "float32", 0), (3, 7, "int32", 2),
                                                  (True, False, "bool", 1),
                                                  (1.0, 0.0, "float64", 2)])
def test_one_hot_any_axis_and_values(on, off, dtype, axis):
    ids = np.array([[0, 3], [5, -1]], np.int32)  # 5 and -1 are outside [0, 4): off
    expected = np.where(ids[..., None] == np.arange(4), on, off).astype(dtype)
    expected = np.moveaxis(expected, -1, axis)
    attrs = {"depth": 4, "axis": axis, "on": on, "off": off, "dtype": dtype}
    ours = _run_indexing("one_hot", attrs, ids, rank=3)
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours, expected)


def test_integer_constant_keeps_its_dtype():
    from codegen.backends.pytorch.ops import render_op
    from codegen.ir.graph import Graph, Node, TensorInfo
    from codegen.ir.weights import WeightEntry

    graph = Graph.__new__(Graph)
    graph.weights = {"ids": WeightEntry("weights/ids.npy", [3], "int32", "")}
    render = render_op(Node("c", "constant", [], [TensorInfo([3], "int32")],
                            weights={"value": "ids"}), graph)
    assert repr(render.args["dtype"]) == "torch.int32"


def _np_bincount(ids, size, weights=None, binary=False, dtype="int32"):
    counts = np.zeros(size, dtype)
    for position, value in enumerate(ids.reshape(-1)):
        if value < size:
            counts[value] = 1 if binary else counts[value] + (
                1 if weights is None else weights.reshape(-1)[position])
    return counts


@pytest.mark.parametrize("rows, weighted, binary, dtype", [
    (False, False, False, "int32"), (False, True, False, "float32"), (True, False, False, "int64"),
    (True, True, False, "int32"), (True, False, True, "float32"), (False, False, True, "int32")])
def test_bincount_computes_its_reference(rows, weighted, binary, dtype):
    """Counts of 0 .. size - 1 (flat, or per row), values >= size left out."""
    from codegen.ir.graph import TensorInfo

    rng = np.random.default_rng(7)
    ids = rng.integers(0, 9, (3, 7)).astype(np.int32)
    weights = rng.normal(size=(3, 7)).astype(np.float32 if dtype == "float32" else np.int32)
    size = 6
    shape = [3, size] if rows else [size]
    attrs = {"size": size, "binary": binary, "rows": rows, "weighted": weighted}
    ours = _run_helper_op("bincount", attrs,
                          [ids, weights] if weighted else [ids],
                          outputs=[TensorInfo(shape, dtype)]).numpy()
    w = weights if weighted else None
    expected = np.stack([_np_bincount(row, size, None if w is None else w[i], binary, dtype)
                         for i, row in enumerate(ids)]) if rows else \
        _np_bincount(ids, size, w, binary, dtype)
    assert ours.dtype == expected.dtype
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    run_time = _run_helper_op("bincount", {**attrs, "size": None},
                              [ids, weights, np.array([size], np.int32)] if weighted
                              else [ids, np.array([size], np.int32)],
                              outputs=[TensorInfo([3, None] if rows else [None], dtype)]).numpy()
    np.testing.assert_array_equal(run_time, ours)  # the size a run-time value


def test_dynamic_partition_and_stitch_compute_their_references():
    from codegen.ir.graph import TensorInfo

    data = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    partitions = np.array([2, 0, 2, 1, 0, 2], np.int32)
    parts = _run_helper_op("dynamic_partition", {"num_partitions": 4}, [data, partitions],
                           outputs=[TensorInfo([None, 2])] * 4)
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part.numpy(), data[partitions == i])
    first, second = np.array([[4, 1], [0, 4]], np.int32), np.array([1, 2], np.int32)
    values = np.arange(4 * 3, dtype=np.float32).reshape(2, 2, 3), -np.ones((2, 3), np.float32)
    merged = _run_helper_op("dynamic_stitch", {"count": 2}, [first, second, *values],
                            outputs=[TensorInfo([5, 3])]).numpy()
    expected = np.zeros((5, 3), np.float32)  # row 3: no index names it
    for index, part in zip((first, second), values):
        for position in np.ndindex(index.shape):
            expected[index[position]] = part[position]  # the later entry wins
    np.testing.assert_array_equal(merged, expected)


def _np_max_pool_with_argmax(x, kernel, stride, pad, include_batch):
    """TF's kernel on the NHWC image: the first largest in the window, row by row."""
    batch, channels, height, width = x.shape
    top, bottom, left, right = pad
    rows = (height + top + bottom - kernel[0]) // stride[0] + 1
    cols = (width + left + right - kernel[1]) // stride[1] + 1
    pooled = np.zeros((batch, channels, rows, cols), x.dtype)
    index = np.zeros((batch, channels, rows, cols), np.int64)
    for b, c, i, j in np.ndindex(pooled.shape):
        best = None
        for y in range(i * stride[0] - top, i * stride[0] - top + kernel[0]):
            for z in range(j * stride[1] - left, j * stride[1] - left + kernel[1]):
                if 0 <= y < height and 0 <= z < width and (best is None or x[b, c, y, z] > best):
                    best = x[b, c, y, z]
                    index[b, c, i, j] = (y * width + z) * channels + c + (
                        b * height * width * channels if include_batch else 0)
        pooled[b, c, i, j] = best
    return pooled, index


@pytest.mark.parametrize("kernel, stride, pad, include_batch", [
    ([2, 2], [2, 2], [0, 0, 0, 0], False), ([3, 3], [2, 2], [1, 1, 1, 1], True),
    ([3, 2], [1, 2], [0, 2, 1, 0], False)])
def test_max_pool_with_argmax_computes_its_reference(kernel, stride, pad, include_batch):
    from codegen.ir.graph import TensorInfo

    x = np.random.default_rng(8).normal(size=(2, 3, 5, 6)).astype(np.float32)
    x[0, 0, :2, :2] = 1.5  # a tie: the first wins
    attrs = {"kernel_size": kernel, "strides": stride, "pad": pad,
             "include_batch_in_index": include_batch, "axis": 1}
    pooled, index = _run_helper_op("max_pool_with_argmax", attrs, [x], outputs=[
        TensorInfo([2, 3, None, None]), TensorInfo([2, 3, None, None], "int64")])
    expected_pooled, expected_index = _np_max_pool_with_argmax(x, kernel, stride, pad,
                                                               include_batch)
    np.testing.assert_array_equal(pooled.numpy(), expected_pooled)
    np.testing.assert_array_equal(index.numpy(), expected_index)


def _np_adjust_hue(image, delta):
    """TF's AdjustHue kernel (adjust_hue_op.cc), pixel by pixel in float32."""
    f, out = np.float32, np.empty_like(image)
    for position in np.ndindex(image.shape[:-1]):
        r, g, b = image[position]
        if r < g:
            vmax, vmid, vmin, category = (g, r, b, 1) if b < r else (b, g, r, 3) if b > g \
                else (g, b, r, 2)
        else:
            vmax, vmid, vmin, category = (r, g, b, 0) if b < g else (b, r, g, 4) if b > r \
                else (r, b, g, 5)
        hue = f(0)
        if vmax != vmin:
            ratio = (vmid - vmin) / (vmax - vmin)
            hue = f(category) + (ratio if category % 2 == 0 else f(1) - ratio)
        hue = hue + f(delta) * f(6)
        while hue < 0:
            hue += f(6)
        while hue >= 6:
            hue -= f(6)
        category = int(hue)
        ratio = hue - f(category) if category % 2 == 0 else f(1) - (hue - f(category))
        vmid = vmin + ratio * (vmax - vmin)
        out[position] = [(vmax, vmid, vmin), (vmid, vmax, vmin), (vmin, vmax, vmid),
                         (vmin, vmid, vmax), (vmid, vmin, vmax), (vmax, vmin, vmid)][category]
    return out


def _np_adjust_saturation(image, scale):
    """TF's AdjustSaturation kernel (adjust_saturation_op.cc), pixel by pixel in float32."""
    f, out = np.float32, np.empty_like(image)
    for position in np.ndindex(image.shape[:-1]):
        r, g, b = image[position]
        value = max(r, g, b)
        chroma = value - min(r, g, b)
        saturation = chroma / value if value > 0 else f(0)
        hue = f(0)
        if chroma > 0:
            norm = f(1) / (f(6) * chroma)
            hue = norm * (g - b) if r == value else norm * (b - r) + f(2 / 6) if g == value \
                else norm * (r - g) + f(4 / 6)
        hue = hue + 1 if hue < 0 else hue
        c = min(f(1), max(f(0), saturation * f(scale))) * value
        m, sixths = value - c, hue * f(6)
        wrapped = sixths
        while wrapped <= 0:
            wrapped += f(2)
        while wrapped >= 2:
            wrapped -= f(2)
        x = c * (1 - abs(wrapped - 1))
        rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(sixths)] \
            if int(sixths) < 6 else (0, 0, 0)
        out[position] = [channel + m for channel in rgb]
    return out


@pytest.mark.parametrize("op, amount", [("adjust_hue", 0.3), ("adjust_hue", -0.85),
                                        ("adjust_saturation", 0.4), ("adjust_saturation", 2.5)])
def test_hsv_adjustments_compute_their_references(op, amount):
    """RGB along axis 1 (NCHW) and along the last axis, gray and black pixels included."""
    from codegen.ir.graph import TensorInfo

    image = np.random.default_rng(9).uniform(0, 1, (2, 4, 5, 3)).astype(np.float32)
    image[0, 0] = [[0.5, 0.5, 0.5], [0, 0, 0], [1, 1, 1], [0.2, 0.2, 0.7], [0.9, 0.1, 0.9]]
    reference = _np_adjust_hue if op == "adjust_hue" else _np_adjust_saturation
    expected = reference(image, amount)
    for axis, tensor in ((3, image), (1, image.transpose(0, 3, 1, 2))):
        amounts = np.array(amount, np.float32)
        ours = _run_helper_op(op, {"axis": axis}, [tensor, amounts],
                              outputs=[TensorInfo(list(tensor.shape))]).numpy()
        ours = ours if axis == 3 else ours.transpose(0, 2, 3, 1)
        np.testing.assert_allclose(ours, expected, atol=1e-6)
