"""A residual add written as a plain op in the parent (`x = x + block(x)`, Keras' ConvNeXt)
joins the block it closes (codegen/ir/passes/residuals.py), so a stage's blocks become
`nn.Sequential` and the model's numbered stages one `nn.ModuleList`: `stages[0][1]`, as a
hand-written ConvNeXt has them. Small hand-made graphs for the pass, then a small ConvNeXt
from Keras' own constructor end to end, numerically against TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.passes.residuals import absorb_residual_adds

SHAPE = [None, 4, 5, 5]


def _op(name: str, op: str, inputs: list[str], scope: str, shape=SHAPE) -> Node:
    return Node(name, op, inputs, [TensorInfo(list(shape))], scope=scope)


def _graph(nodes: list[Node]) -> Graph:
    return Graph([GraphInput("x", list(SHAPE))], [GraphOutput("y", f"{nodes[-1].name}:0")],
                 {node.name: node for node in nodes}, {}, layout="NCHW")


def _stage(blocks: int) -> list[Node]:
    """m/stage_0/block_i: relu -> sigmoid, closed by an add in scope m."""
    nodes, source = [], "x:0"
    for index in range(blocks):
        block = f"m/stage_0/block_{index}"
        nodes += [_op(f"relu{index}", "relu", [source], f"{block}/act"),
                  _op(f"scale{index}", "sigmoid", [f"relu{index}:0"], f"{block}/scale"),
                  _op(f"add{index}", "add", [source, f"scale{index}:0"], "m")]
        source = f"add{index}:0"
    return nodes


def test_each_add_joins_the_block_it_closes() -> None:
    graph = absorb_residual_adds(_graph(_stage(3)))
    assert [graph.nodes[f"add{i}"].scope for i in range(3)] == [
        f"m/stage_0/block_{i}" for i in range(3)]


def test_a_scope_holding_only_the_block_gives_the_add_to_the_block() -> None:
    graph = absorb_residual_adds(_graph(_stage(1)))  # (a stage of one block)
    assert graph.nodes["add0"].scope == "m/stage_0/block_0"


def test_the_branch_read_elsewhere_keeps_the_add_in_place() -> None:
    nodes = _stage(1) + [_op("other", "add", ["add0:0", "scale0:0"], "m")]
    graph = absorb_residual_adds(_graph(nodes))
    assert graph.nodes["add0"].scope == "m"


def test_a_block_of_another_input_keeps_the_add_in_place() -> None:
    # a pre-norm transformer: x + attention(norm(x)) stays in the layer
    nodes = [_op("norm", "relu", ["x:0"], "m/norm"),
             _op("attention", "sigmoid", ["norm:0"], "m/attention"),
             _op("add", "add", ["x:0", "attention:0"], "m")]
    assert absorb_residual_adds(_graph(nodes)).nodes["add"].scope == "m"
    # two inputs (hidden states and a mask): stays too
    nodes = [_op("mask", "sigmoid", ["x:0"], "m"),
             _op("attention", "mul", ["x:0", "mask:0"], "m/attention"),
             _op("add", "add", ["x:0", "attention:0"], "m")]
    assert absorb_residual_adds(_graph(nodes)).nodes["add"].scope == "m"


def test_a_broadcasting_add_keeps_its_place() -> None:
    nodes = [_op("pool", "mean", ["x:0"], "m/block", shape=[None, 4, 1, 1]),
             _op("add", "add", ["x:0", "pool:0"], "m")]
    assert absorb_residual_adds(_graph(nodes)).nodes["add"].scope == "m"


# -- end to end -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def convnext(tmp_path_factory):
    from conftest import small_convnext
    from test_transformers import _convert

    from codegen.zoo.keras_apps import save_keras_model

    model = small_convnext([2, 1, 3, 1], 5, "convnext_residual_test")
    folder = tmp_path_factory.mktemp("convnext")
    path = save_keras_model(model, folder, "convnext", formats=("savedmodel",))["savedmodel"]
    torch_model, text = _convert(path, folder / "out")
    return model, torch_model, text


def test_convnext_stages_are_a_module_list_of_blocks(convnext) -> None:
    model, torch_model, text = convnext
    assert "self.stages = nn.ModuleList(" in text
    keys = list(torch_model.state_dict())
    assert any(key.startswith("stages.2.2.") for key in keys), keys
    assert not any(key.startswith("stages.2.3.") for key in keys)
    assert "self.convnext_residual_test_" not in text  # (the model's name is not repeated)
    assert "x + " in text or "+= x" in text  # the block returns x + branch(x)
    images = np.random.default_rng(6).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    expected = model(images).numpy()
    with torch.no_grad():
        ours = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(ours - expected).max() <= 1e-4 * np.abs(expected).max()
