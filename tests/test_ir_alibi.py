"""The IR op `alibi_bias` without TensorFlow (rewrites/alibi.py emits it): the module
`AlibiBias` (scores + slopes[h] * (k - K + 1), the slopes a buffer), built with `codegen build`
from a graph the test writes, run at several key lengths and compared with a numpy reference
of keras-hub's AlibiBias."""

from __future__ import annotations

import numpy as np
import torch

from codegen.backends.pytorch.build import build
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array
from codegen.verify import import_generated

TESTED = {"alibi_bias"}
HEADS, QUERIES = 3, 4


def test_alibi_bias_adds_the_slopes_times_the_key_distance(tmp_path):
    ir_dir = tmp_path / "ir"
    ir_dir.mkdir(parents=True)
    slopes = np.array([0.5, 0.25, 0.0625], "float32")
    weight = save_array(ir_dir, "alibi/slopes", slopes, file_name="slopes.npy",
                        tf_name="alibi/slopes")
    shape = [None, HEADS, QUERIES, None]  # (given as [N, heads * Q, K]: a 4-d input is NHWC)
    nodes = [Node("heads", "unflatten", ["scores:0"], [TensorInfo(shape)],
                  attrs={"axis": 1, "sizes": [HEADS, QUERIES]}, tf_name="heads", scope="attention"),
             Node("alibi", "alibi_bias", ["heads:0"], [TensorInfo(shape)],
                  attrs={"num_heads": HEADS}, weights={"slopes": "alibi/slopes"},
                  tf_name="alibi", scope="attention/alibi")]
    graph = Graph([GraphInput("scores", [None, HEADS * QUERIES, None], "float32")], [GraphOutput("y", "alibi:0")],
                  {n.name: n for n in nodes}, {"alibi/slopes": weight}, layout="NHWC")
    graph.save(ir_dir)
    build(ir_dir, tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    assert "class AlibiBias(nn.Module):" in source and "AlibiBias(3)" in source
    assert "self.slopes[:, None, None] * positions" in source
    model = import_generated(tmp_path / "model").load_model()
    assert not list(model.parameters())  # the slopes are a buffer
    rng = np.random.default_rng(0)
    for batch, keys in ((1, 1), (2, 7), (3, 12)):
        scores = rng.normal(0, 1, (batch, HEADS, QUERIES, keys)).astype("float32")
        with torch.no_grad():
            ours = model(torch.from_numpy(scores).flatten(1, 2)).numpy()
        expected = scores + slopes[:, None, None] * np.arange(1 - keys, 1, dtype="float32")
        np.testing.assert_array_equal(ours, expected)
