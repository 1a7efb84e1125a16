"""`forward` takes the source's input names as keywords, for one input as for several:
`model(chars=ids)` for an input named `chars`. A lone input whose name Python cannot take
as it is (TF-slim's `input`, a builtin) is `x`. No TensorFlow needed."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array
from codegen.verify import import_generated


def embedding_model(tmp_path, input_name: str):
    """ids [N, T] named `input_name` -> embedding [9, 3] -> output; built, imported."""
    ir_dir = tmp_path / "ir"
    ir_dir.mkdir(parents=True)
    table = np.random.default_rng(0).uniform(-1, 1, (9, 3)).astype(np.float32)
    weights = {"emb/table": save_array(ir_dir, "emb/table", table, file_name="table.npy",
                                       tf_name="emb/table")}
    node = Node("emb", "embedding", [f"{input_name}:0"], [TensorInfo([None, None, 3])],
                weights={"table": "emb/table"}, tf_name="emb")
    graph = Graph([GraphInput(input_name, [None, None], "int32")], [GraphOutput("y", "emb:0")],
                  {"emb": node}, weights, layout="NHWC")
    graph.save(ir_dir)
    build(ir_dir, tmp_path / "model", quiet=True)
    return import_generated(tmp_path / "model").load_model(), table


@pytest.mark.parametrize("name, parameter", [("chars", "chars"), ("input", "x"),
                                             ("token_ids", "token_ids")])
def test_one_input_by_keyword(tmp_path, name, parameter):
    model, table = embedding_model(tmp_path, name)
    assert list(inspect.signature(model.forward).parameters) == [parameter]
    ids = torch.tensor([[1, 8, 0], [4, 4, 2]], dtype=torch.int32)
    with torch.no_grad():
        by_keyword = model(**{parameter: ids})
        by_position = model(ids)
    np.testing.assert_array_equal(by_keyword.numpy(), table[ids.numpy()])
    np.testing.assert_array_equal(by_position.numpy(), table[ids.numpy()])
