"""`codegen verify` on keras-hub encoder-decoders (issue 21): T5 (token ids and padding masks
on both sides, relative-position tables that share one name) and Whisper (audio features for
the encoder, a frozen encoder position table), tiny configs built offline, from `.keras` and
from a SavedModel. verify exits 0; its parameter line reads `source N trainable = generated
N` with N Keras' own `model.trainable_weights` (each variable once: a frozen table is a
buffer); the encoder's length and the decoder's are drawn independently, each at two values;
the float64 reference agrees with TF's float32 to round-off (a float32 mask beside a float64
query once sent torch's fused attention kernel 0.4 off). Skipped without keras-hub."""

from __future__ import annotations

import re

import pytest
from conftest import trainable_count
from test_keras_hub import saved_backbone

from codegen.backends.pytorch.build import build
from codegen.cli import main as cli_main
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.sample_inputs import DECODER_LENGTHS, SEQUENCE_LENGTHS

keras_hub = pytest.importorskip("keras_hub")

SIZES = {"vocabulary_size": 100, "num_layers": 2, "hidden_dim": 32, "intermediate_dim": 64}
BUILDERS = {
    "t5": lambda m: m.T5Backbone(**SIZES, num_heads=4),
    "whisper": lambda m: m.WhisperBackbone(**SIZES, num_heads=2, num_mels=8,
                                           max_encoder_sequence_length=32,
                                           max_decoder_sequence_length=32),
}
LINE = re.compile(r"batch (\d+): (\S+) \[([\d, ]+)\]  max\|PyTorch - TF\| / max\|TF\| = (\S+)"
                  r"  \(vs float64: TF (\S+), ours (\S+)\)")


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def source(request, tmp_path_factory):
    model, paths = saved_backbone(BUILDERS[request.param],
                                  tmp_path_factory.mktemp(request.param), request.param)
    return request.param, model, paths


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_verify_encoder_decoder(source, fmt, tmp_path, capsys) -> None:
    kind, model, paths = source
    to_ir(paths[fmt], None, None, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    capsys.readouterr()
    code = cli_main(["verify", str(paths[fmt]), str(tmp_path / "model"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    count = f"{trainable_count(model):,}"
    assert f"parameters: source {count} trainable = generated {count}\n" in out, out
    if kind == "whisper":  # the encoder's position table: frozen in Keras, a buffer here
        assert any("position_embedding" in w.path for w in model.non_trainable_weights)
    rows = [LINE.fullmatch(line) for line in out.splitlines() if line.startswith("batch ")]
    assert len(rows) == 4 and all(rows), out  # 2 outputs x 2 draws
    for row in rows:
        assert max(float(row[4]), float(row[5]), float(row[6])) <= 1e-4, row[0]
    # lengths by draw: the decoder's output (Identity) and the encoder's (Identity_1), each
    # its own; Whisper's encoder halves its frames (a stride-2 convolution)
    lengths = {(row[2], int(row[1])): int(row[3].split(", ")[1]) for row in rows}
    halve = (lambda n: (n + 1) // 2) if kind == "whisper" else (lambda n: n)
    assert [lengths["Identity", 4], lengths["Identity", 1]] == list(DECODER_LENGTHS)
    assert [lengths["Identity_1", 4], lengths["Identity_1", 1]] == [
        halve(n) for n in SEQUENCE_LENGTHS]


def test_decoder_lengths_only_beside_an_encoder() -> None:
    from codegen.sample_inputs import random_inputs

    def spec(name: str) -> dict:
        return {"tf_name": name, "shape": [None, None], "dtype": "int32", "nchw": False}

    both = {"inputs": [spec("decoder_token_ids"), spec("encoder_token_ids")]}
    only = {"inputs": [spec("decoder_token_ids"), spec("padding_mask")]}
    for draw in (0, 1):
        drawn = random_inputs(both, 2, 0, draw)
        assert drawn["decoder_token_ids"].shape == (2, DECODER_LENGTHS[draw])
        assert drawn["encoder_token_ids"].shape == (2, SEQUENCE_LENGTHS[draw])
        shapes = {array.shape for array in random_inputs(only, 2, 0, draw).values()}
        assert shapes == {(2, SEQUENCE_LENGTHS[draw])}
