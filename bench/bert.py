"""Make keras-hub's BERT-base as a SavedModel, offline, with deterministic random weights.

    python bench/bert.py OUT_DIR [--tiny]

`keras_hub.models.BertBackbone` built from its config (never a preset: no network):
12 layers, 12 heads, hidden 768, intermediate 3072, vocabulary 30522, positions 512
(110 M parameters); Keras' own initialisers under `keras.utils.set_random_seed(0)`.
`model.export(OUT_DIR)` writes the SavedModel; its `serving_default` signature takes
token_ids, segment_ids and padding_mask as int32 [batch, length], both unknown. --tiny makes a
2-layer, hidden-32 model of the same structure (for trying the pipeline quickly).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

BASE = {"vocabulary_size": 30522, "num_layers": 12, "num_heads": 12, "hidden_dim": 768,
        "intermediate_dim": 3072, "max_sequence_length": 512}
TINY = {"vocabulary_size": 100, "num_layers": 2, "num_heads": 2, "hidden_dim": 32,
        "intermediate_dim": 64, "max_sequence_length": 32}
VOCAB = BASE["vocabulary_size"]


def make(out: Path, config: dict = BASE) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    model = keras_hub.models.BertBackbone(**config)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.export(str(partial), verbose=False)
    partial.rename(out)  # a cached folder is always complete


def bench_inputs(batch: int = 8, length: int = 128, vocab: int = VOCAB) -> dict:
    """The inference input (seed 0): token ids, two segments, the last quarter padded."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab, (batch, length)).astype(np.int32)
    segments = (np.arange(length) >= length // 2).astype(np.int32)[None].repeat(batch, 0)
    mask = np.ones((batch, length), np.int32)
    mask[:, length * 3 // 4:] = 0
    ids[mask == 0] = 0
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    make(args.out, TINY if args.tiny else BASE)
