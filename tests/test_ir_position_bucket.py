"""The IR op `relative_position_bucket` without TensorFlow (rewrites/position_bucket.py emits
it): T5's buckets as the generated helper of that name, built with `codegen build` from a
graph the test writes, run on relative positions of any size and compared value for value
with a numpy reference of Mesh TensorFlow's formula (float32, as keras-hub computes it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.verify import import_generated

TESTED = {"relative_position_bucket"}


def _reference(relative: np.ndarray, bidirectional: bool, num_buckets: int,
               max_distance: int) -> np.ndarray:
    buckets = np.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0).astype(relative.dtype) * num_buckets
        relative = np.abs(relative)
    else:
        relative = -np.minimum(relative, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.log(relative.astype("float32") / np.float32(max_exact)) \
            / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
    large = max_exact + np.where(np.isfinite(scaled), scaled, 0).astype(relative.dtype)
    return buckets + np.where(relative < max_exact, relative, np.minimum(large, num_buckets - 1))


def _model(tmp_path, attrs: dict):
    ir_dir = tmp_path / "ir"
    ir_dir.mkdir(parents=True)
    shape = TensorInfo([None, None], "int32")
    nodes = [Node("buckets", "relative_position_bucket", ["relative:0"], [shape], attrs=attrs,
                  tf_name="buckets", scope="attention")]
    graph = Graph([GraphInput("relative", [None, None], "int32")],
                  [GraphOutput("y", "buckets:0")], {n.name: n for n in nodes}, {},
                  layout="NHWC")
    graph.save(ir_dir)
    build(ir_dir, tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    return import_generated(tmp_path / "model").load_model(), source


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (16, 40)])
def test_relative_position_bucket_computes_t5s_buckets(tmp_path, bidirectional, num_buckets,
                                                       max_distance):
    attrs = {"bidirectional": bidirectional, "num_buckets": num_buckets,
             "max_distance": max_distance}
    model, source = _model(tmp_path, attrs)
    assert "def relative_position_bucket(" in source and "import math" in source
    assert (f"bidirectional={bidirectional}, num_buckets={num_buckets}, "
            f"max_distance={max_distance}") in " ".join(source.split())
    for rows, cols in ((1, 1), (7, 12), (3, 401)):
        relative = (np.arange(cols)[None, :] - np.arange(rows)[:, None] * 150).astype("int32")
        with torch.no_grad():
            ours = model(torch.from_numpy(relative))
        assert ours.dtype == torch.int32
        np.testing.assert_array_equal(
            ours.numpy(), _reference(relative, bidirectional, num_buckets, max_distance))
