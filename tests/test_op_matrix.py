"""The single-op matrix: one tiny TF graph per case, converted in-process and compared with TF
(max|ours - TF| / max|TF| <= 1e-5 for floats, equality for integers and booleans, same
dtype). See tests/op_matrix.py for the harness; a case is its id (the TF op and a variant),
a function of TF tensors and its inputs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from op_matrix import Case, Input, check, refusal

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()
raw = tf.raw_ops

F = Input()  # float32 [2, 3, 4], normal
POS, UNIT, ABOVE = Input(kind="positive"), Input(kind="unit"), Input(kind="above_one")
SPECIAL = Input(kind="special")
I32 = Input(dtype="int32", kind="small")
NZ32 = Input(dtype="int32", kind="nonzero")
I64 = Input(dtype="int64", kind="small")
B = Input(dtype="bool")
ROW = Input((4,))  # broadcasts against [2, 3, 4]
ROW_NZ32 = Input((4,), "int32", "nonzero")


def unary(op: str, spec: Input = F, variant: str = "") -> Case:
    function = getattr(raw, op)
    argument = next(iter(inspect.signature(function).parameters))  # x or features
    return Case(f"{op}{'-' + variant if variant else ''}", lambda x: function(**{argument: x}),
                (spec,))


def binary(op: str, a: Input, b: Input, variant: str) -> Case:
    function = getattr(raw, op)
    return Case(f"{op}-{variant}", lambda x, y: function(x=x, y=y), (a, b))


UNARY = [
    unary("Relu"), unary("Relu6"), unary("Elu"), unary("Selu"), unary("Sigmoid"), unary("Tanh"),
    unary("Softplus"), unary("Softsign"), unary("Neg"), unary("Neg", I32, "int32"),
    unary("Abs"), unary("Abs", I32, "int32"), unary("Square"), unary("Square", I64, "int64"),
    unary("Sign"), unary("Exp"), unary("Log", POS), unary("Sqrt", POS), unary("Rsqrt", POS),
    unary("Erf"), unary("Erfc"), unary("Ceil"), unary("Floor"), unary("Round"),
    unary("Sin"), unary("Cos"), unary("Tan", UNIT), unary("Asin", UNIT), unary("Acos", UNIT),
    unary("Atan"), unary("Sinh"), unary("Cosh"), unary("Asinh"), unary("Acosh", ABOVE),
    unary("Atanh", UNIT), unary("Expm1"), unary("Expm1", Input(kind="unit"), "near_zero"),
    unary("Log1p", POS), unary("Reciprocal"), unary("Inv"),
    unary("IsNan", SPECIAL), unary("IsInf", SPECIAL), unary("IsFinite", SPECIAL),
    unary("LogicalNot", B), unary("ZerosLike"), unary("OnesLike"),
    Case("LeakyRelu", lambda x: tf.nn.leaky_relu(x, 0.3)),
    Case("Softmax", tf.nn.softmax),
    Case("Sqrt-float64", lambda x: tf.sqrt(x), (Input(dtype="float64", kind="positive"),)),
]

BINARY = [
    binary("AddV2", F, F, "same"), binary("AddV2", F, ROW, "broadcast"),
    binary("AddV2", I32, I32, "int32"), binary("Sub", F, ROW, "broadcast"),
    binary("Sub", I64, I64, "int64"), binary("Mul", F, F, "same"), binary("Mul", I32, I32, "int32"),
    binary("RealDiv", F, Input((4,), kind="positive"), "broadcast"),
    binary("Maximum", F, F, "same"), binary("Minimum", F, ROW, "broadcast"),
    binary("SquaredDifference", F, F, "same"), binary("Pow", POS, F, "float"),
    binary("Atan2", F, F, "same"), binary("Atan2", F, ROW, "broadcast"),
    binary("FloorDiv", F, F, "float"), binary("FloorDiv", I32, NZ32, "int32"),
    binary("FloorDiv", I32, ROW_NZ32, "int32_broadcast"),
    binary("FloorMod", F, F, "float"), binary("FloorMod", I32, NZ32, "int32"),
    binary("FloorMod", I64, Input(dtype="int64", kind="nonzero"), "int64"),
    binary("Mod", F, F, "float"), binary("Mod", I32, NZ32, "int32"),
    binary("TruncateMod", I32, NZ32, "int32"), binary("TruncateDiv", I32, NZ32, "int32"),
    binary("TruncateDiv", I64, Input(dtype="int64", kind="nonzero"), "int64"),
    Case("FloorDiv-int_scalar", lambda x: x // 3, (I32,)),
    Case("FloorMod-int_scalar", lambda x: x % 3, (I32,)),
    Case("Mul-float_scalar", lambda x: x * 0.5),
]

COMPARE = []
for _op in ("Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"):
    COMPARE += [binary(_op, F, F, "float"), binary(_op, F, ROW, "broadcast"),
                binary(_op, I32, I32, "int32")]
COMPARE += [
    Case("Greater-scalar", lambda x: x > 0.5), Case("Equal-int_scalar", lambda x: tf.equal(x, 2), (I32,)),
    Case("LessEqual-int_scalar", lambda x: x <= 1, (I32,)),
    binary("LogicalAnd", B, B, "same"), binary("LogicalOr", B, B, "same"),
    binary("LogicalOr", B, Input((4,), "bool"), "broadcast"),
    Case("SelectV2-compare", lambda x, y: tf.where(x > y, x, y), (F, F)),
]

NUMERIC = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
SOURCES = {"bool": B, "uint8": Input(dtype="uint8", kind="positive"),
           "int8": Input(dtype="int8", kind="small"), "int16": Input(dtype="int16", kind="small"),
           "int32": I32, "int64": I64, "float16": Input(dtype="float16"),
           "float32": Input(kind="normal"),
           "float64": Input(dtype="float64")}


def cast(source: str, target: str) -> Case:
    to = tf.as_dtype(target)
    return Case(f"Cast-{source}-{target}", lambda x: tf.cast(x, to), (SOURCES[source],))


CASTS = [cast(s, t) for s in NUMERIC for t in NUMERIC
         if s != t and not (s in ("float16", "bfloat16", "float32", "float64")
                            and t == "uint8")]  # a negative float to uint8 is undefined
CASTS.append(Case("Cast-float32-uint8", lambda x: tf.cast(x, tf.uint8), (POS,)))
# bfloat16 has no numpy dtype (nor torch.from_numpy): read back as float32 after the cast
CASTS += [Case(f"Cast-{s}-bfloat16", lambda x: tf.cast(tf.cast(x, tf.bfloat16), tf.float32),
               (SOURCES[s],)) for s in ("bool", "int32", "float16", "float32", "float64")]
CASTS += [Case("Cast-bfloat16-int32", lambda x: tf.cast(tf.cast(x, tf.bfloat16), tf.int32)),
          Case("Cast-bfloat16-float16", lambda x: tf.cast(tf.cast(x, tf.bfloat16), tf.float16))]

REDUCE = []
for _op, _fn, _spec in (("Sum", tf.reduce_sum, F), ("Mean", tf.reduce_mean, F),
                        ("Max", tf.reduce_max, F), ("Min", tf.reduce_min, F),
                        ("Prod", tf.reduce_prod, F), ("EuclideanNorm", tf.math.reduce_euclidean_norm, F),
                        ("All", tf.reduce_all, B), ("Any", tf.reduce_any, B)):
    for _axes in ((1,), (0, 2), (-1,)):
        for _keep in (False, True):
            REDUCE.append(Case(f"{_op}-axes{''.join(str(a) for a in _axes)}{'-keep' if _keep else ''}",
                               lambda x, f=_fn, a=list(_axes), k=_keep: f(x, a, keepdims=k),
                               (_spec,)))
REDUCE += [
    Case("Sum-int32", lambda x: tf.reduce_sum(x, [0, 2]), (I32,)),
    Case("Prod-int32", lambda x: tf.reduce_prod(x, [1]), (I32,)),
    Case("Max-int32", lambda x: tf.reduce_max(x, [1], keepdims=True), (I32,)),
    Case("Min-int64", lambda x: tf.reduce_min(x, [2]), (I64,)),
]
for _op, _fn in (("ArgMax", tf.math.argmax), ("ArgMin", tf.math.argmin)):
    REDUCE += [Case(f"{_op}-axis{a}-{t}", lambda x, f=_fn, a=a, t=t: f(x, a, output_type=t))
               for a in (0, 1, -1) for t in (tf.int64, tf.int32)]
    REDUCE.append(Case(f"{_op}-int32_input", lambda x, f=_fn: f(x, 1), (Input(dtype="int32"),)))

SHIFT = Input(dtype="int32", kind="shift")
MORE = [
    unary("Rint"), unary("Lgamma", POS), unary("Digamma", POS), unary("Erfinv", UNIT),
    unary("Ndtri", Input(kind="probability")), unary("BesselI0e"),
    unary("Invert", I32, "int32"), unary("Invert", Input(dtype="uint8", kind="positive"), "uint8"),
    binary("BitwiseAnd", I32, I32, "int32"), binary("BitwiseOr", I32, I32, "int32"),
    binary("BitwiseXor", I64, I64, "int64"), binary("LeftShift", I32, SHIFT, "int32"),
    binary("RightShift", I32, SHIFT, "int32"), binary("Xlogy", F, POS, "float"),
    Case("Xlogy-zero_x", lambda x, y: raw.Xlogy(x=x * 0.0, y=y), (F, POS)),
    binary("Div", F, POS, "float"), binary("Div", I32, NZ32, "int32"),
    Case("Select", lambda c, x, y: raw.Select(condition=c, x=x, y=y), (B, F, F)),
    Case("LogSoftmax", tf.nn.log_softmax), Case("LogSoftmax-rank2", tf.nn.log_softmax, (Input((3, 6)),)),
]

IMAGE = Input((2, 4, 5, 3))  # NHWC: the generated model runs it as NCHW
IMAGES = [
    Case(f"{op}-image-axes{''.join(map(str, axes))}{'-keep' if keep else ''}",
         lambda x, f=fn, a=axes, k=keep: f(x, a, keepdims=k), (IMAGE,))
    for op, fn in (("Sum", tf.reduce_sum), ("Max", tf.reduce_max), ("Min", tf.reduce_min),
                   ("Prod", tf.reduce_prod), ("EuclideanNorm", tf.math.reduce_euclidean_norm))
    for axes, keep in (([1, 2], True), ([3], False), ([1, 3], False))
] + [
    Case("Mean-image-axes12", lambda x: tf.reduce_mean(x, [1, 2]), (IMAGE,)),
    Case("All-image-axes3", lambda x: tf.reduce_all(x, 3), (Input((2, 4, 5, 3), "bool"),)),
    Case("ArgMax-image-channels", lambda x: tf.math.argmax(x, -1), (IMAGE,)),
    Case("ArgMin-image-axis1-int32", lambda x: tf.math.argmin(x, 1, output_type=tf.int32), (IMAGE,)),
    Case("LogSoftmax-image", tf.nn.log_softmax, (IMAGE,)),
    Case("Greater-image-channel_row", lambda x: x > tf.constant([0.1, -0.2, 0.3]), (IMAGE,)),
    Case("FloorMod-image", lambda x, y: tf.math.floormod(x, y), (IMAGE, IMAGE)),
    Case("Atan2-image", tf.math.atan2, (IMAGE, IMAGE)),
    Case("Cast-image-float32-int32", lambda x: tf.cast(x * 3, tf.int32), (IMAGE,)),
    Case("IsNan-image", tf.math.is_nan, (Input((2, 4, 5, 3), kind="special"),)),
    Case("Sinh-image", tf.sinh, (IMAGE,)),
]

CASES = UNARY + BINARY + COMPARE + CASTS + REDUCE + MORE + IMAGES


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_op_matches_tensorflow(case):
    check(case)


def _hash_table(x):
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant([1, 2], tf.int64), tf.constant([10, 20], tf.int64)), -1)
    return table.lookup(x)


# ops with no PyTorch meaning: refused at to-ir (exit 4) with one line naming the op and why
REFUSED = [
    (Case("RandomUniform", lambda x: x + tf.random.uniform([2, 3, 4])), "random stream"),
    (Case("RandomStandardNormal-seeded", lambda x: x + tf.random.normal([2, 3, 4], seed=1)),
     "random stream"),
    (Case("AsString", lambda x: tf.strings.to_number(tf.strings.as_string(x))), "strings"),
    (Case("HashTableV2-lookup", _hash_table, (Input((3,), "int64", "small"),)), "hash-table"),
    (Case("RaggedRange", lambda x: raw.RaggedRange(starts=x, limits=x + 3, deltas=x * 0 + 1)
          .rt_dense_values, (Input((3,), "int32", "small"),)), "ragged"),
    (Case("SparseToDense", lambda x: raw.SparseToDense(
        sparse_indices=x, output_shape=[6], sparse_values=1.0, default_value=0.0),
        (Input((3,), "int32", "small"),)), "sparse"),
    (Case("Mean-int32", lambda x: tf.reduce_mean(x, 1), (I32,)), "integers"),
    (Case("EuclideanNorm-int32", lambda x: tf.math.reduce_euclidean_norm(x, 1), (I32,)), "integers"),
]


@pytest.mark.parametrize("case, reason", REFUSED, ids=[case.id for case, _ in REFUSED])
def test_op_without_pytorch_meaning_is_refused_with_its_reason(case, reason):
    message = refusal(case)
    assert "\n" not in message and reason in message, message
    assert f"({case.id.split('-')[0]})" in message, message

# ops that converted before this matrix: kept here so a regression shows per op
EXISTING = [
    Case("Cumsum-axis1", lambda x: tf.cumsum(x, 1)),
    Case("Cumsum-exclusive_reverse", lambda x: tf.cumsum(x, -1, exclusive=True, reverse=True)),
    Case("ClipByValue-numbers", lambda x: tf.clip_by_value(x, -0.5, 0.7)),
    Case("Reshape", lambda x: tf.reshape(x, [2, 12])), Case("Reshape-rank4", lambda x: tf.reshape(x, [2, 3, 2, 2])),
    Case("Transpose", lambda x: tf.transpose(x, [0, 2, 1])),
    Case("ConcatV2", lambda x, y: tf.concat([x, y], -1), (F, Input((2, 3, 2)))),
    Case("Pad", lambda x: tf.pad(x, [[0, 0], [1, 2], [0, 1]])),
    Case("PadV2", lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 0]], constant_values=1.5)),
    Case("Squeeze", lambda x: tf.squeeze(x, [1]), (Input((2, 1, 4)),)),
    Case("ExpandDims", lambda x: tf.expand_dims(x, 1)),
    Case("StridedSlice", lambda x: x[:, 1:3, ::2]),
    Case("StridedSlice-shrink", lambda x: x[:, 0]),
    Case("ReverseV2", lambda x: tf.reverse(x, [1])),
    Case("MatMul-weight", lambda x: tf.matmul(x, tf.constant(
        np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32))), (Input((3, 4)),)),
    Case("Softmax-rank2", tf.nn.softmax, (Input((3, 5)),)),
    Case("Pow-int32", lambda x: tf.pow(x, 2), (I32,)),
    Case("Sum-all_axes", lambda x: tf.reduce_sum(x)),
    Case("Max-all_axes_keep", lambda x: tf.reduce_max(x, keepdims=True)),
    Case("Mean-axes012", lambda x: tf.reduce_mean(x, [0, 1, 2])),
    Case("Any-all_axes", tf.reduce_any, (B,)),
    Case("Prod-axes012", lambda x: tf.reduce_prod(x, [0, 1, 2]), (UNIT,)),
    Case("Selu-float64", tf.nn.selu, (Input(dtype="float64"),)),
    Case("AddV2-float16", lambda x, y: x + y, (Input(dtype="float16"), Input(dtype="float16"))),
    Case("Cast-chain-float32-int32-bool", lambda x: tf.cast(tf.cast(x, tf.int32), tf.bool)),
]


@pytest.mark.parametrize("case", EXISTING, ids=[case.id for case in EXISTING])
def test_existing_op_matches_tensorflow(case):
    check(case)
