"""Sampling sizes at conversion keeps no weight-sized memory (issue 21, Scale).

A decoder's run-time sizes are read by running the graph at two sample sizes
(Converter.sample_run), once per rotary embedding, mask and attention. The session that runs
them kept, for every new set of fetches, an executor with its own full-size copy of each
weight the loader had set aside (a Const of one zero repeated to the weight's shape): a
bfloat16 Llama of 8 layers, 0.16 B parameters, took 2.1 GB in `to-ir`, growing by ~200 MB a
layer. Now the session runs a copy of the graph where those Consts are Fills (their zeros
live only while a run needs them) and is closed after each sampling. Skipped without
keras-hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_transformers import _convert

from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.converter import Converter
from codegen.frontends.tensorflow.to_ir import convert_model
from codegen.zoo.keras_apps import save_keras_model

keras_hub = pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A Llama whose query/key/value/MLP kernels and embeddings are large enough (>= 64 KiB)
    to be set aside by the loader."""
    import_tf()
    import keras

    keras.utils.set_random_seed(1)
    model = keras_hub.models.LlamaBackbone(
        vocabulary_size=300, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=128, intermediate_dim=256)
    return model, save_keras_model(model, tmp_path_factory.mktemp("llama"), "llama",
                                   formats=("savedmodel",))["savedmodel"]


def test_sampling_runs_a_graph_without_weight_sized_constants(llama, monkeypatch) -> None:
    _, path = llama
    sampled = []
    original = Converter.sample_run

    def counting(self, tensors, shapes_of=()):
        runs = original(self, tensors, shapes_of)
        sampled.append((runs is not None, self._session))
        return runs

    monkeypatch.setattr(Converter, "sample_run", counting)
    graph, converter = convert_model(path, None, None)
    assert sampled and all(ran for ran, _ in sampled)  # sizes were sampled, and ran
    assert all(session is None for _, session in sampled)  # closed after each sampling
    aside = [name for name in converter.model.graph.get_operations()
             if name.type == "Const" and name.name in converter.model.aside]
    assert len(aside) >= 10  # the kernels and embeddings of the model
    for op in aside:  # in the graph the samplings ran: Fills of one zero
        assert converter._sampled.get_operation_by_name(op.name).type == "Fill"
    assert graph.nodes  # converted


def test_the_model_still_matches_tensorflow(llama, tmp_path) -> None:
    model, path = llama
    torch_model, source = _convert(path, tmp_path)
    assert "torch.arange(" in source
    rng = np.random.default_rng(0)
    for batch, length in ((1, 1), (3, 7), (2, 12)):
        ids = rng.integers(0, 300, (batch, length)).astype("int32")
        mask = np.ones((batch, length), "int32")
        mask[-1, length // 2 + 1:] = 0
        expected = np.asarray(model({"token_ids": ids, "padding_mask": mask}))
        with torch.no_grad():
            ours = torch_model(padding_mask=torch.from_numpy(mask), token_ids=torch.from_numpy(ids))
        assert np.abs(ours.numpy() - expected).max() / np.abs(expected).max() < 1e-4
