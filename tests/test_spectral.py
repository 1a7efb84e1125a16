"""Fourier transforms with complex intermediates convert to torch.fft and match TensorFlow:
tf.signal's fft/ifft/fft2d/ifft2d/rfft/irfft with Complex, Real, Imag, ComplexAbs and a
cast to complex64 (a tf.Module SavedModel), and keras-hub's FNetBackbone (tiny, random
weights, from its SavedModel and .keras file), whose mixing layer reads as FNet does by hand:
torch.fft.fft2(x.to(torch.complex64)).real."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

LENGTHS, BATCHES, VOCAB = (7, 12), (1, 3), 50


def _convert(path, out):
    to_ir(path, None, None, out / "ir", quiet=True)
    build(out / "ir", out / "model", quiet=True)
    return import_generated(out / "model").load_model(), (out / "model" / "model.py").read_text()


def _error(ours: torch.Tensor, reference) -> float:
    reference = np.asarray(reference)
    assert tuple(ours.shape) == reference.shape
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


def _parameters(torch_model) -> int:
    return sum(parameter.numel() for parameter in torch_model.parameters())


@pytest.fixture(scope="module")
def signal_module(tmp_path_factory):
    """x [N, T, 6] -> x @ W, then every transform once; T is unknown in the signature."""
    tf = import_tf()
    weight = np.random.default_rng(0).normal(0, 0.5, (6, 6)).astype(np.float32)

    class Spectra(tf.Module):
        def __init__(self):
            super().__init__()
            self.weight = tf.Variable(weight, name="weight")

        @tf.function(input_signature=[tf.TensorSpec([None, None, 6], tf.float32, name="x")])
        def __call__(self, x):
            h = tf.matmul(x, self.weight)
            mixed = tf.math.real(tf.signal.fft(tf.complex(h, 0.5 * x)))
            mixed += tf.math.imag(tf.signal.fft2d(tf.cast(h, tf.complex64)))
            back = tf.math.real(tf.signal.ifft(tf.signal.fft(tf.cast(h, tf.complex64))))
            both = tf.math.abs(tf.signal.ifft2d(tf.complex(h, tf.zeros_like(h))))
            spectrum = tf.signal.rfft(h)  # 6 -> 4 bins
            odd = tf.signal.irfft(tf.signal.rfft(h, fft_length=[5]), fft_length=[5])
            return {"mixed": mixed + back + both, "power": tf.math.abs(spectrum),
                    "even": tf.signal.irfft(spectrum), "odd": odd,
                    "phase": tf.math.imag(spectrum),
                    "plane": tf.signal.irfft2d(tf.signal.rfft2d(tf.reshape(h[:, :1], [-1, 2, 3])),
                                               fft_length=[2, 3])}

    module = Spectra()
    path = tmp_path_factory.mktemp("spectra") / "saved"
    tf.saved_model.save(module, str(path), signatures=module.__call__)
    return module, path


def test_tf_signal_ops_match_tensorflow(signal_module, tmp_path):
    module, path = signal_module
    torch_model, source = _convert(path, tmp_path)
    rng = np.random.default_rng(1)
    names = ["even", "mixed", "odd", "phase", "plane", "power"]
    worst = 0.0
    for batch in BATCHES:
        for length in LENGTHS:
            x = rng.normal(0, 1, (batch, length, 6)).astype(np.float32)
            expected = module(x)
            with torch.no_grad():
                ours = torch_model(torch.from_numpy(x))
            ours = dict(zip(names, ours)) if isinstance(ours, tuple) else ours
            for name in names:
                worst = max(worst, _error(ours[name], expected[name]))
    assert worst <= 1e-4, worst
    assert _parameters(torch_model) == 36
    for text in ("torch.fft.fft(", "torch.fft.fft2(", "torch.fft.ifft(", "torch.fft.ifft2(",
                 "torch.fft.rfft(", "torch.fft.irfft(", ", n=5)", "torch.fft.rfft2(",
                 "s=(2, 3)", ".to(torch.complex64)",
                 "torch.complex(", ".real", ".imag", "torch.abs("):
        assert text in source, text


@pytest.fixture(scope="module")
def fnet(tmp_path_factory):
    import_tf()
    import keras

    keras_hub = pytest.importorskip("keras_hub")
    from codegen.zoo.keras_apps import save_keras_model

    keras.utils.set_random_seed(2)
    model = keras_hub.models.FNetBackbone(vocabulary_size=VOCAB, num_layers=2, hidden_dim=16,
                                          intermediate_dim=32, max_sequence_length=16)
    rng = np.random.default_rng(2)
    for weight in model.weights:  # biases, gammas and betas off Keras's 0 / 1
        mean = 0.5 if len(weight.shape) == 1 else 0.0
        weight.assign(rng.normal(mean, 0.3, weight.shape).astype("float32"))
    return model, save_keras_model(model, tmp_path_factory.mktemp("fnet"), "fnet")


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_fnet_backbone(fnet, fmt, tmp_path):
    model, paths = fnet
    torch_model, source = _convert(paths[fmt], tmp_path)
    names = [tensor.name for tensor in model.inputs]
    rng = np.random.default_rng(3)
    for batch in BATCHES:
        for length in LENGTHS:
            feeds = {"token_ids": rng.integers(0, VOCAB, (batch, length)).astype("int32"),
                     "segment_ids": rng.integers(0, 4, (batch, length)).astype("int32")}
            expected = model(feeds, training=False)
            with torch.no_grad():
                pooled, sequence = torch_model(*(torch.from_numpy(feeds[n]) for n in names))
            assert _error(pooled, expected["pooled_output"]) <= 1e-4, (batch, length)
            assert _error(sequence, expected["sequence_output"]) <= 1e-4, (batch, length)
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    assert _parameters(torch_model) == trainable
    assert len(re.findall(r"torch\.fft\.fft2\(\w+\.to\(torch\.complex64\)\)\.real", source)) == 1, source
    assert "class FNetLayer(nn.Module)" in source
