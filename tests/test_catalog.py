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
