"""keras-hub decoders and encoder-decoders beyond the ones tests/test_keras_hub_sizes.py
names, tried as a user brings them: GPT-NeoX (partial rotary), T5 (relative-position
buckets), DeBERTa-v3 (disentangled attention; tf.repeat of a table by the batch size read at
run time), Qwen3 (a sliding-window band whose width is min(key_len, window - 1), cut to the
mask's size at run time), and Falcon, OPT, Phi-3, Qwen2, Llama 3, Mixtral and BART. Tiny
configs built offline, random weights spread off their initial values, compared with TF at
lengths 1, 7 and 12, batch 1 and 3, padding masks partly zero (1e-4 max abs / max ref), the
parameter count equal to the source's trainable count (the LM head's reverse embeddings are
not in a backbone's graph). The first four run from SavedModel and `.keras` in the fast
suite; the others from both formats behind the zoo marker."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_param_count, trainable_count
from test_keras_hub import saved_backbone
from test_keras_hub_sizes import VOCAB, _errors, assert_mask_made_once
from test_transformers import _convert

keras_hub = pytest.importorskip("keras_hub")

SIZES = {"vocabulary_size": VOCAB, "num_layers": 2, "hidden_dim": 32, "intermediate_dim": 64}
GQA = {"num_query_heads": 4, "num_key_value_heads": 2}
BUILDERS = {
    "gpt_neox": lambda m: m.GPTNeoXBackbone(**SIZES, num_heads=4, rotary_percentage=0.5),
    "t5": lambda m: m.T5Backbone(**SIZES, num_heads=4),
    "deberta_v3": lambda m: m.DebertaV3Backbone(**SIZES, num_heads=4),
    "qwen3": lambda m: m.Qwen3Backbone(**SIZES, **GQA, head_dim=8, sliding_window_size=4),
    "falcon": lambda m: m.FalconBackbone(**SIZES, num_attention_heads=4),
    "opt": lambda m: m.OPTBackbone(**SIZES, num_heads=4),
    "phi3": lambda m: m.Phi3Backbone(**SIZES, **GQA),
    "qwen2": lambda m: m.Qwen2Backbone(**SIZES, **GQA),
    "llama3": lambda m: m.Llama3Backbone(**SIZES, **GQA),
    "mixtral": lambda m: m.MixtralBackbone(**SIZES, **GQA, num_experts=2),
    "bart": lambda m: m.BartBackbone(**SIZES, num_heads=4),
}
FAST = ["gpt_neox", "t5", "deberta_v3", "qwen3"]
ZOO = [pytest.param(kind, marks=pytest.mark.zoo) for kind in BUILDERS if kind not in FAST]


@pytest.fixture(scope="module", params=FAST + ZOO)
def source(request, tmp_path_factory):
    model, paths = saved_backbone(BUILDERS[request.param],
                                  tmp_path_factory.mktemp(request.param), request.param)
    return request.param, model, paths


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_backbone_matches_tensorflow(source, fmt, tmp_path) -> None:
    kind, model, paths = source
    torch_model, text = _convert(paths[fmt], tmp_path)
    errors = _errors(model, torch_model)
    assert max(errors) <= 1e-4, errors
    unread = sum(int(np.prod(v.shape)) for v in model.trainable_weights
                 if "reverse_embeddings" in v.path)
    assert_param_count(tmp_path / "model", trainable_count(model) - unread)
    assert ".item()" not in text
    if kind == "qwen3":  # the band of run-time width, the mask cut at run time
        assert ".triu(-" in text and ".tril(" in text
    if kind in ("llama3", "qwen2", "mixtral", "phi3", "gpt_neox"):  # (mask once, at the top)
        assert_mask_made_once(text)
    if kind == "deberta_v3":  # the relative table repeated over the batch read at run time
        assert "x.shape[0]" in text or "batch" in text
