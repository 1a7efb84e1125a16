"""tf2onnx's published support table as a checklist: every TF op it converts (the default
domain of its support_status.md; the op names alone are in tests/data/tf2onnx_ops.txt) is
either converted here (a handler), refused with a one-line reason
(codegen/frontends/tensorflow/refused.py), part of the graph itself (inputs, constants), a
name no TF graph holds, or listed below in NOT_YET. An op that gains a handler or a refusal
must leave NOT_YET (a stale entry fails), so the set only shrinks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codegen.frontends.tensorflow.converter import PASSTHROUGH_OPS
from codegen.frontends.tensorflow.handlers import load_handlers
from codegen.frontends.tensorflow.refused import refused_family

OPS = Path(__file__).parent.joinpath("data", "tf2onnx_ops.txt").read_text().split()

# the graph itself: placeholders are the model's inputs (PlaceholderV2, of GraphDefs before
# version 23, is read as a Placeholder: loader.py), Consts its weights and constants, NoOp
# only carries control dependencies (never a data input)
STRUCTURAL = {"Const", "Placeholder", "PlaceholderV2", "PlaceholderWithDefault", "NoOp"}

# names tf2onnx gives its own intermediate forms (Conv1D, Dropout, Flatten, Loop, Scan, ...)
# or TFLite flatbuffer ops (TFL_*): no TF GraphDef holds them (TF's op registry does not know
# them; test_not_tf_ops_are_not_tf_ops checks)
NOT_TF_OPS = {"ConstV2", "Conv1D", "DepthwiseConv2d", "Dropout", "Flatten", "HardSwish", "Loop",
              "Prelu", "RandomNormal", "RandomNormalLike", "RandomUniformLike", "Scan",
              "SquaredDistance", "TFL_CONCATENATION", "TFL_DEQUANTIZE", "TFL_PRELU",
              "TFL_QUANTIZE", "TFL_TFLite_Detection_PostProcess", "TFL_WHILE"}

# every op of the list converts or is refused with a reason: nothing is left to do (an op
# added to the list that is neither goes here, with what it needs)
NOT_YET: set[str] = set()


def _status(op: str) -> str:
    handlers = load_handlers()
    if op in handlers or op in PASSTHROUGH_OPS:
        return "handler"
    if refused_family(op) is not None:
        return "refused"
    if op in STRUCTURAL:
        return "structural"
    if op in NOT_TF_OPS:
        return "not a TF op"
    return "not yet" if op in NOT_YET else "missing"


def test_the_list_is_op_names_only():
    assert len(OPS) > 250
    assert OPS == sorted(set(OPS))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", op) for op in OPS)


@pytest.mark.parametrize("op", OPS)
def test_every_checklist_op_is_accounted_for(op):
    assert _status(op) != "missing", (
        f"{op}: add a handler, a refusal with a reason (refused.py), or list it in NOT_YET")


def test_not_yet_has_no_stale_entries():
    stale = {op for op in NOT_YET if _status(op) in ("handler", "refused")}
    assert not stale, f"handled or refused now, remove from NOT_YET: {sorted(stale)}"
    assert NOT_YET <= set(OPS)
    assert not (NOT_YET & (STRUCTURAL | NOT_TF_OPS))


def test_refusals_give_one_line_reasons():
    for op in OPS:
        family = refused_family(op)
        if family is not None and _status(op) == "refused":
            assert family.reason and "\n" not in family.reason, op


def test_not_tf_ops_are_not_tf_ops():
    pytest.importorskip("tensorflow")
    from tensorflow.python.framework import op_def_registry

    assert [op for op in sorted(NOT_TF_OPS) if op_def_registry.get(op) is not None] == []
    assert [op for op in sorted(STRUCTURAL | NOT_YET) if op_def_registry.get(op) is None] == []


def test_counts():
    """The split the report quotes (handled / refused / structural / not TF ops / not yet)."""
    counts = {}
    for op in OPS:
        counts[_status(op)] = counts.get(_status(op), 0) + 1
    assert counts.get("missing", 0) == 0
    assert counts.get("not yet", 0) == len(NOT_YET)
    print(counts)


REFUSED = [
    ("TensorListGetItem", lambda tf, x: tf.raw_ops.TensorListGetItem(
        input_handle=tf.raw_ops.TensorListFromTensor(tensor=x, element_shape=[4, 3]),
        index=1, element_shape=[4, 3], element_dtype=tf.float32), "TensorList"),
    ("DenseToDenseSetOperation", lambda tf, x: tf.sets.intersection(
        tf.cast(x, tf.int32), tf.cast(x, tf.int32)).values, "sparse tensors"),
    ("SampleDistortedBoundingBoxV2", lambda tf, x: tf.image.sample_distorted_bounding_box(
        tf.shape(x)[:3], tf.reshape(x[0, :4, 0], [1, 1, 4]), seed=1)[0], "random"),
]


@pytest.mark.parametrize("op, fn, reason", REFUSED, ids=[op for op, _, _ in REFUSED])
def test_refused_at_to_ir_with_the_reason(op, fn, reason):
    """A user's graph with the op ends in exit 4 and one line naming the op and why."""
    from op_matrix import Case, Input, refusal

    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    message = refusal(Case(op, lambda x: fn(tf, x), (Input((2, 4, 3)),)))
    assert f"({op})" in message and reason in message, message
