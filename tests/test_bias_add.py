"""A BiasAdd that no conv / linear before it can take (a Keras Conv1D's: ExpandDims -> Conv2D
-> Squeeze -> BiasAdd; or one after an activation) renders as a small `BiasAdd` module that
holds the bias as a parameter, at any rank. It once had no renderer and `build` died with
KeyError 'bias_add'. No TensorFlow needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_ir_ops import images, run_one_op

from codegen.ir.graph import Node, TensorInfo


@pytest.mark.parametrize("shape", [(2, 5), (2, 7, 4), (3, 5, 6, 4)])
def test_lone_bias_add_after_an_activation(tmp_path, shape):
    """x -> relu -> bias_add (TF layout: channels last), as NHWC for rank 4."""
    x = images(*shape)
    bias = images(shape[-1])
    relu = Node("relu", "relu", ["x:0"], [TensorInfo([None, *shape[1:]])])
    ours = run_one_op(tmp_path, "bias_add", x, [None, *shape[1:]], weights={"bias": bias},
                      extra=[relu], inputs=["relu:0"])
    np.testing.assert_allclose(ours, np.maximum(x, 0) + bias, rtol=1e-6, atol=1e-6)
    source = (tmp_path / "model" / "model.py").read_text()
    assert "class BiasAdd(nn.Module):" in source
    assert f"BiasAdd({shape[-1]}{', channels_first=True' if len(shape) == 4 else ''})" in source
    from codegen.verify import import_generated

    model = import_generated(tmp_path / "model").build_model()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0].endswith(".bias"), trainable  # a parameter
    assert torch.count_nonzero(model.state_dict()[trainable[0]]) == 0  # build_model(): zeros
