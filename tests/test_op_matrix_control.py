"""Single-op matrix of the ops TF keeps whole that a hand-written PyTorch model spells out:
functional conditionals (If / StatelessIf from tf.cond in a tf.function), TF1 contrib's fused
LSTM cell (LSTMBlockCell), CombinedNonMaxSuppression, and the refusal of cuDNN's RNN op (no
CPU kernel in TF). Each case is a tiny TF graph converted in-process and compared with TF
(tests/op_matrix.py)."""

from __future__ import annotations

import numpy as np
import pytest
from op_matrix import Case, Input, check, refusal

from codegen.frontends.tensorflow.compat import import_tf

tf = import_tf()
raw = tf.raw_ops


def output(case, index):
    return Case(f"{case.id}-output{index}", lambda *xs: case.fn(*xs)[index], case.inputs)


# -- LSTMBlockCell ---------------------------------------------------------------------------
BATCH, FEATURES, UNITS = 3, 5, 4
RNG = np.random.default_rng(23)
W = RNG.normal(0, 0.5, (FEATURES + UNITS, 4 * UNITS)).astype(np.float32)
B = RNG.normal(0, 0.5, 4 * UNITS).astype(np.float32)
PEEPHOLES = RNG.normal(0, 0.5, (3, UNITS)).astype(np.float32)


def cell(name, states=True, **kw):
    def fn(x, c, h):
        wci, wcf, wco = (tf.constant(p) for p in PEEPHOLES)
        return raw.LSTMBlockCell(x=x, cs_prev=c * 2.0, h_prev=h, w=tf.constant(W), wci=wci,
                                 wcf=wcf, wco=wco, b=tf.constant(B), **kw)
    return Case(f"LSTMBlockCell-{name}", fn,
                (Input((BATCH, FEATURES)), Input((BATCH, UNITS)), Input((BATCH, UNITS))))


CELLS = [output(cell("default"), 6), output(cell("default-state"), 1),
         output(cell("no-clip", cell_clip=-1.0, forget_bias=0.5), 1),
         output(cell("clip", cell_clip=0.5), 1), output(cell("clip-h", cell_clip=0.5), 6),
         *(output(cell("peephole", use_peephole=True, cell_clip=-1.0), i) for i in range(7)),
         output(cell("peephole-clip", use_peephole=True, cell_clip=0.7, forget_bias=0.0), 6),
         Case("LSTMBlockCell-two-steps", lambda x, c, h: raw.LSTMBlockCell(
             x=x, cs_prev=raw.LSTMBlockCell(x=x, cs_prev=c, h_prev=h, w=W, wci=PEEPHOLES[0],
                                            wcf=PEEPHOLES[1], wco=PEEPHOLES[2], b=B)[1],
             h_prev=raw.LSTMBlockCell(x=x, cs_prev=c, h_prev=h, w=W, wci=PEEPHOLES[0],
                                      wcf=PEEPHOLES[1], wco=PEEPHOLES[2], b=B)[6],
             w=W, wci=PEEPHOLES[0], wcf=PEEPHOLES[1], wco=PEEPHOLES[2], b=B)[6],
              (Input((BATCH, FEATURES)), Input((BATCH, UNITS)), Input((BATCH, UNITS))))]


# -- CombinedNonMaxSuppression ---------------------------------------------------------------
def combined(name, q=1, boxes=8, classes=3, per_class=3, total=6, iou=0.5, score=0.2,
             batch=2, spread=1.0, score_kind="probability", **kw):
    def fn(b, s):
        return raw.CombinedNonMaxSuppression(
            boxes=b * spread, scores=s, max_output_size_per_class=tf.constant(per_class),
            max_total_size=tf.constant(total), iou_threshold=tf.constant(iou, tf.float32),
            score_threshold=tf.constant(score, tf.float32), **kw)
    return Case(f"CombinedNonMaxSuppression-{name}", fn,
                (Input((batch, boxes, q, 4), kind="probability"),
                 Input((batch, boxes, classes), kind=score_kind)))


def all_outputs(case):
    return [output(case, i) for i in range(4)]


COMBINED = [
    *all_outputs(combined("default")),
    *all_outputs(combined("per-class-boxes", q=3, per_class=2, total=5)),
    *all_outputs(combined("pad-per-class", pad_per_class=True, per_class=2, total=20)),
    *all_outputs(combined("clip", clip_boxes=True, spread=1.6)),
    *all_outputs(combined("no-clip", clip_boxes=False, spread=1.6)),
    output(combined("iou-0.2", iou=0.2, boxes=10, total=10), 0),
    output(combined("high-score-threshold", score=0.7, total=8), 3),
    output(combined("high-score-threshold-boxes", score=0.7, total=8), 0),
    output(combined("per-class-above-boxes", per_class=12, boxes=5, total=30), 1),
    output(combined("total-below-found", per_class=4, total=3), 2),
    output(combined("one-class", classes=1, per_class=5, total=4), 0),
    # scores below -1 rank after the slots TF leaves unfilled (which hold a score of -1)
    *all_outputs(combined("below-minus-one", score=float("-inf"), score_kind="normal",
                          boxes=4, classes=2, per_class=3, total=8, iou=0.3)),
    *all_outputs(Case("CombinedNonMaxSuppression-unfilled-slot-first", lambda s: (
        raw.CombinedNonMaxSuppression(  # TF returns 0.5, then an unfilled slot (score -1)
            boxes=tf.constant([[[[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]]]),
            scores=tf.constant([[[0.5, -2.0], [0.4, -3.0]]]) + 0.0 * s,
            max_output_size_per_class=2, max_total_size=4, iou_threshold=0.5,
            score_threshold=float("-inf"))), (Input((1, 2, 2)),))),
]


# -- If / StatelessIf (tf.cond on a tensor) -------------------------------------------------
X, Y = Input((2, 3)), Input((2, 3), kind="positive")
ALWAYS = {"true": lambda x: tf.reduce_max(tf.cast(x, tf.float32)) > -100.0,
          "false": lambda x: tf.reduce_max(tf.cast(x, tf.float32)) > 100.0,
          "run-time": lambda x: tf.reduce_sum(tf.cast(x, tf.float32)) > 0.0}


def cond(name, then, other, inputs=(X,), pick="run-time", index=None):
    def fn(*xs):
        result = tf.cond(ALWAYS[pick](xs[0]), lambda: then(*xs), lambda: other(*xs))
        return result if index is None else result[index]
    return Case(f"If-{name}-{pick}" + ("" if index is None else f"-output{index}"), fn, inputs)


def both(name, then, other, inputs=(X,), **kw):
    return [cond(name, then, other, inputs, pick, **kw) for pick in ("true", "false")]


CONDITIONALS = [
    *both("elementwise", lambda x: x * 2.0, lambda x: tf.tanh(x) - 1.0),
    cond("elementwise", lambda x: x * 2.0, lambda x: tf.tanh(x) - 1.0),
    *both("identity-branch", lambda x: x, lambda x: tf.nn.relu(x) + 0.5),
    *both("constant-branch", lambda x: tf.zeros_like(x) + 3.0,
          lambda x: tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))),
    *both("second-input", lambda x, y: x * y, lambda x, y: tf.sqrt(y) / (1.0 + y), (X, Y)),
    *both("two-outputs", lambda x: (x + 1.0, tf.sigmoid(x)), lambda x: (x - 1.0, tf.exp(x)),
          index=0),
    *both("two-outputs", lambda x: (x + 1.0, tf.sigmoid(x)), lambda x: (x - 1.0, tf.exp(x)),
          index=1),
    *both("nested", lambda x: tf.cond(tf.reduce_min(x) < 0.0, lambda: x * 3.0, lambda: -x),
          lambda x: tf.square(x)),
    *both("integers", lambda n: n * 2 + 1, lambda n: tf.abs(n) - 3,
          (Input((2, 3), "int32", "small"),)),
    *both("booleans", lambda x: x > 0.5, lambda x: tf.logical_not(x > 0.0)),
    *both("nan-in-other-branch", lambda x: tf.math.log(x), lambda x: x * 1.0),
    *both("scalars", lambda x: tf.reduce_sum(x), lambda x: tf.reduce_max(x)),
    # (a scalar constant in a branch: a rank-0 weight used to be written as [1])
    *both("nested-scalars", lambda x: tf.cond(tf.reduce_min(x) < 0.0, lambda: tf.reduce_sum(x),
                                              lambda: tf.reduce_max(x)),
          lambda x: tf.reduce_min(x) * 2.0),
]

CASES = CELLS + COMBINED + CONDITIONALS


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_tf(case):
    check(case)


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)


# -- refusals --------------------------------------------------------------------------------
def cudnn(version):
    def fn(x):
        args = {"input": x, "input_h": tf.zeros([1, 2, 5]), "input_c": tf.zeros([1, 2, 5]),
                "params": tf.zeros([4 * (4 * 5 + 5 * 5 + 5 + 5)]), "rnn_mode": "lstm",
                "is_training": False}
        if version == "V3":
            args["sequence_lengths"] = tf.constant([3, 3])
        return getattr(raw, f"CudnnRNN{version}")(**args)[0]
    return Case(f"CudnnRNN{version}", fn, (Input((3, 2, 4)),))


REFUSED = [(cudnn(""), "CudnnRNN"), (cudnn("V2"), "CudnnRNNV2"), (cudnn("V3"), "CudnnRNNV3")]


@pytest.mark.parametrize("case, op", REFUSED, ids=[c.id for c, _ in REFUSED])
def test_refused(case, op):
    message = refusal(case)
    assert f"({op})" in message and "no CPU kernel" in message and "Keras LSTM/GRU" in message


TABLE = np.arange(12, dtype=np.float32).reshape(4, 3)
REFUSED_CONDITIONALS = [  # both branches would run: one that may fail or costs more is refused
    (cond("gather", lambda x: tf.gather(TABLE, tf.cast(x[:, 0], tf.int32)), lambda x: x * 0.0),
     "GatherV2"),
    (cond("matmul", lambda x: x @ tf.ones((3, 3)), lambda x: x), "MatMul"),
    (cond("integer-division", lambda n: n // 2, lambda n: n, (Input((2, 3), "int32", "small"),)),
     "FloorDiv"),
    (cond("nested-print", lambda x: tf.cond(tf.reduce_min(x) < 0.0,
                                            lambda: tf.raw_ops.Print(input=x, data=[x]),
                                            lambda: x), lambda x: x), "Print"),
]


@pytest.mark.parametrize("case, op", REFUSED_CONDITIONALS, ids=[c.id for c, _ in REFUSED_CONDITIONALS])
def test_conditional_refused_with_what_its_branches_hold(case, op):
    message = refusal(case)
    assert "If)" in message and "torch.where runs both" in message and op in message


@pytest.mark.parametrize("pick", ["true", "false"])
def test_conditional_in_a_frozen_graphdef(monkeypatch, pick):
    """A frozen GraphDef (not a SavedModel) with a conditional converts the same way."""
    import op_matrix

    monkeypatch.setattr(op_matrix, "FORMAT", "graphdef")
    check(cond("graphdef", lambda x: x * 2.0, lambda x: tf.tanh(x) - 1.0, pick=pick))


def test_cudnn_rnn_has_no_cpu_kernel():
    """Why CudnnRNN is refused: TF cannot run it here, so nothing could check a conversion."""
    x = tf.zeros([3, 2, 4])
    with pytest.raises(tf.errors.NotFoundError, match="Could not find device"):
        raw.CudnnRNN(input=x, input_h=tf.zeros([1, 2, 5]), input_c=tf.zeros([1, 2, 5]),
                     params=tf.zeros([4 * (4 * 5 + 5 * 5 + 5 + 5)]), rnn_mode="lstm")


def test_conditional_reads_variables(tmp_path):
    """Variables read in the branches stay the model's: a trainable one a parameter, the
    other a buffer; the numbers are TF's with the predicate true and false."""
    import torch
    from op_matrix import compare

    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    class Scaled(tf.Module):
        def __init__(self):
            self.scale = tf.Variable(np.array([1.5, -2.0, 0.5], np.float32), name="scale")
            self.shift = tf.Variable(np.full(3, 0.25, np.float32), name="shift", trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def __call__(self, x):
            return tf.cond(tf.reduce_sum(x) > 0.0, lambda: x * self.scale, lambda: x + self.shift)

    module = Scaled()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.__call__)
    to_ir(tmp_path / "saved", None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    model = import_generated(tmp_path / "model").load_model()
    assert [p.numel() for p in model.parameters()] == [3]
    assert sum(b.numel() for b in model.buffers()) == 3
    for x in (np.ones((2, 3), np.float32), -np.arange(12, dtype=np.float32).reshape(4, 3)):
        with torch.no_grad():
            compare(model(torch.from_numpy(x)).numpy(), module(x).numpy())


def test_conditional_in_a_tf1_checkpoint(tmp_path):
    """A TF1 graph (.meta + checkpoint; TF2 builds tf.cond as an If there too) whose branches
    read a variable: the variable is one trainable parameter, the numbers are TF's."""
    import torch

    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import import_generated

    v1 = tf.compat.v1
    feeds = [np.ones((2, 3), np.float32), -np.arange(12, dtype=np.float32).reshape(4, 3)]
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 3], name="input")
        scale = v1.get_variable("scale", [3], initializer=v1.random_normal_initializer(seed=1))
        y = tf.cond(tf.reduce_sum(x) > 0.0, lambda: x * scale, lambda: tf.tanh(x) - scale)
        tf.identity(y, name="output")
        assert "If" in {op.type for op in graph.get_operations()}
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(tmp_path / "cond.ckpt"))
            expected = [session.run("output:0", {"input:0": feed}) for feed in feeds]
    to_ir(tmp_path / "cond.ckpt.meta", None, ["output"], tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    model = import_generated(tmp_path / "model").load_model()
    assert [p.numel() for p in model.parameters()] == [3]
    for feed, tf_result in zip(feeds, expected):
        with torch.no_grad():
            ours = model(torch.from_numpy(feed)).numpy()
        np.testing.assert_allclose(ours, tf_result, rtol=1e-6)


@pytest.mark.parametrize("name, predicate, size, says", [
    ("int-predicate", lambda n: n[0], 1, "int32 of shape ()"),
    ("vector-predicate", lambda n: n > 2, 2, "bool of shape (2,)")])
def test_conditional_needs_a_boolean_scalar_predicate(name, predicate, size, says):
    """tf.cond always passes one boolean; a raw If with another predicate is refused."""
    spec = tf.TensorSpec((2, 3), tf.float32)
    then = tf.function(lambda x: x * 2.0, autograph=False).get_concrete_function(spec)
    other = tf.function(lambda x: x - 1.0, autograph=False).get_concrete_function(spec)
    message = refusal(Case(f"If-{name}", lambda x, n: raw.StatelessIf(
        cond=predicate(n), input=[x], Tout=[tf.float32], then_branch=then,
        else_branch=other)[0], (Input((2, 3)), Input((size,), "int32", "shift"))))
    assert "(StatelessIf)" in message and says in message, message
