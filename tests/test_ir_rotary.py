"""The rotary embedding's IR ops without TensorFlow (rewrites/rotary.py emits them):
`rotary_embedding` (the module `RotaryEmbedding`, cos and sin of the positions' angles) and
`apply_rotary_pos_emb` (query and key together, or one tensor), built with `codegen build`
from a graph the test writes, run at two lengths and compared with a numpy reference of
keras-hub's RotaryEmbedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node, TensorInfo
from codegen.ir.weights import save_array
from codegen.verify import import_generated

TESTED = {"rotary_embedding", "apply_rotary_pos_emb"}
HEADS, DIM = 3, 8


def _reference(x: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """keras-hub: x * cos(emb) + reshape(stack([-x2, x1], -2)) * sin(emb), emb the angles
    positions * inv_freq twice over the last axis."""
    positions = np.arange(x.shape[1], dtype="float32")
    freqs = np.einsum("i,j->ij", positions, inv_freq)
    emb = np.stack([freqs, freqs], -2).reshape(x.shape[1], -1)[None, :, None, :]
    x1, x2 = np.split(x, 2, -1)
    rotated = np.stack([-x2, x1], -2).reshape(x.shape)
    return x * np.cos(emb) + rotated * np.sin(emb)


def _model(tmp_path, paired: bool):
    """x [N, T, heads * dim] -> heads -> rotary_embedding -> apply (q = x, k = 2 x when
    paired) -> outputs."""
    ir_dir = tmp_path / "ir"
    ir_dir.mkdir(parents=True)
    inv_freq = (1.0 / 500.0 ** (np.arange(0, DIM, 2, dtype="float32") / DIM)).astype("float32")
    weight = save_array(ir_dir, "rope/inv_freq", inv_freq, file_name="inv_freq.npy",
                        tf_name="rope/inv_freq")
    shape = [None, None, HEADS, DIM]
    angles = TensorInfo([1, None, 1, DIM])
    nodes = [Node("heads", "unflatten", ["x:0"], [TensorInfo(shape)],
                  attrs={"axis": 2, "sizes": [HEADS, DIM]}, tf_name="heads", scope="attention"),
             Node("rope", "rotary_embedding", ["heads:0"], [angles, angles],
                  attrs={"dim": DIM, "base": 500}, weights={"inv_freq": "rope/inv_freq"},
                  tf_name="rope", scope="attention/rotary_emb")]
    inputs = ["heads:0"]
    if paired:
        nodes.append(Node("two", "scalar", [], [TensorInfo([])], attrs={"value": 2.0},
                          tf_name="two", scope="attention"))
        nodes.append(Node("key", "mul", ["heads:0", "two:0"], [TensorInfo(shape)], tf_name="key",
                          scope="attention"))
        inputs.append("key:0")
    nodes.append(Node("rotated", "apply_rotary_pos_emb", [*inputs, "rope:0", "rope:1"],
                      [TensorInfo(shape) for _ in inputs], tf_name="rotated", scope="attention"))
    outputs = [GraphOutput(f"y{i}", f"rotated:{i}") for i in range(len(inputs))]
    graph = Graph([GraphInput("x", [None, None, HEADS * DIM], "float32")], outputs, {n.name: n for n in nodes},
                  {"rope/inv_freq": weight}, layout="NHWC")
    graph.save(ir_dir)
    build(ir_dir, tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    return import_generated(tmp_path / "model").load_model(), source, inv_freq


@pytest.mark.parametrize("paired", [True, False])
def test_rotary_ops_compute_keras_hubs_rotation(tmp_path, paired):
    model, source, inv_freq = _model(tmp_path, paired)
    assert "class RotaryEmbedding(nn.Module):" in source and "def rotate_half(" in source
    assert "cos, sin = self.rotary_emb(" in source
    assert ("q, k = apply_rotary_pos_emb(" in source) == paired
    rng = np.random.default_rng(0)
    for length in (1, 7):
        x = rng.normal(0, 1, (2, length, HEADS, DIM)).astype("float32")
        with torch.no_grad():
            ours = model(torch.from_numpy(x.reshape(2, length, HEADS * DIM)))
        ours = ours if isinstance(ours, tuple) else (ours,)
        np.testing.assert_allclose(ours[0].numpy(), _reference(x, inv_freq), rtol=1e-5,
                                   atol=1e-5)
        if paired:
            np.testing.assert_allclose(ours[1].numpy(), _reference(2 * x, inv_freq),
                                       rtol=1e-5, atol=1e-5)
    # the constructor's formula (base 500) gives the buffer the weights load
    torch.testing.assert_close(model.rotary_emb.inv_freq,
                               type(model.rotary_emb)(DIM, base=500).inv_freq)
