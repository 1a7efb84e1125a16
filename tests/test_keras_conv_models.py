"""Small Keras models of the conv family for audio, text, video and segmentation, each built
here with random weights, saved (SavedModel and the Keras file; tf_keras .h5 where it says),
converted, and compared with the Keras model at two input sizes, batch 1 and 3 (max |ours -
TF| / max |TF| <= 1e-4); the generated model has exactly the source's trainable parameters:

- a text CNN: Embedding, Conv1D 'same', a causal dilated Conv1D, a dilated 'same' Conv1D
  (TF: SpaceToBatchND around the conv), GlobalMaxPooling1D, Dense (Keras 3 and tf_keras);
- Conv1D among other sequence layers (BatchNormalization, a residual add, a Dense per step);
- a video net: Conv3D, MaxPooling3D 'same' (of any size: MaxPool3dSame), GlobalAveragePooling3D,
  Dense;
- a U-Net with Conv2DTranspose up-sampling and Concatenate skips (Keras 3 and tf_keras);
  `unet(..., up=...)` takes the up-sampling step as a parameter;
- Conv1DTranspose and Conv3DTranspose ('same' with the odd step cropped, 'valid', an
  output_padding, a dilated one);
- a grouped strided 'same' Conv1D (of any length: Conv1dSame), SeparableConv1D, 1-D pooling.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from codegen.backends.pytorch.build import build
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

TOLERANCE = 1e-4
VOCAB = 50


# -- the models --------------------------------------------------------------------------------
def text_cnn(keras):
    layers = keras.layers
    ids = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(VOCAB, 8, name="embed")(ids)
    x = layers.Conv1D(12, 3, padding="same", activation="relu", name="conv_same")(x)
    x = layers.Conv1D(12, 3, padding="causal", dilation_rate=2, activation="relu",
                      name="conv_causal")(x)
    x = layers.Conv1D(10, 3, padding="same", dilation_rate=2, name="conv_dilated")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    return keras.Model(ids, layers.Dense(4, name="logits")(x))


def sequence_mix(keras):
    """Conv1D among other sequence layers: BatchNormalization on the embedding and after a
    conv (nn.BatchNorm1d on [N, C, T]), a residual add with the embedding and a Dense per
    step (back to [N, T, C] once)."""
    layers = keras.layers
    ids = keras.Input((None,), dtype="int32", name="tokens")
    embedded = layers.Embedding(VOCAB, 8, name="embed")(ids)
    x = layers.BatchNormalization(name="embed_bn")(embedded)
    x = layers.Conv1D(8, 3, padding="same", name="conv1")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv1D(8, 5, padding="causal", name="conv2")(x)
    x = layers.Add(name="residual")([x, embedded])
    return keras.Model(ids, layers.Dense(5, name="per_step")(x))


def video_net(keras):
    layers = keras.layers
    clip = keras.Input((None, None, None, 3), name="clip")
    x = layers.Conv3D(8, 3, padding="same", activation="relu", name="conv1")(clip)
    x = layers.MaxPooling3D(2, padding="same", name="pool1")(x)
    x = layers.Conv3D(12, (1, 3, 3), strides=(1, 2, 2), padding="same", name="conv2")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    return keras.Model(clip, layers.Dense(5, name="logits")(x))


def transpose_up(layers, x, filters: int, name: str):
    """U-Net up-sampling by a learned 2x transposed conv (TF 'same': the full output's odd
    step is cropped)."""
    return layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=name)(x)


def upsampling_up(layers, x, filters: int, name: str):
    """U-Net up-sampling as the original paper's 'up-convolution': nearest 2x up-sampling,
    then a 2x2 conv."""
    x = layers.UpSampling2D(2, name=f"{name}_upsample")(x)
    return layers.Conv2D(filters, 2, padding="same", name=name)(x)


def unet(keras, up=transpose_up, depth: int = 2, width: int = 8, size: int | None = None):
    """A small U-Net: conv blocks (conv-BN-ReLU x2), max-pool down, `up(layers, x, filters,
    name)` up, concatenated with the skip of the same level; images of any size divisible
    by 2 ** depth, or of `size` x `size`."""
    layers = keras.layers

    def block(x, filters, name):
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
            x = layers.ReLU(name=f"{name}_relu{i}")(x)
        return x

    image = keras.Input((size, size, 3), name="image")
    x, skips = image, []
    for level in range(depth):
        x = block(x, width << level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = block(x, width << depth, "bottom")
    for level in reversed(range(depth)):
        x = up(layers, x, width << level, f"up{level}")
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = block(x, width << level, f"decode{level}")
    return keras.Model(image, layers.Conv2D(2, 1, name="classes")(x))


def transposes_1d(keras):
    layers = keras.layers
    signal = keras.Input((None, 4), name="signal")
    x = layers.Conv1DTranspose(6, 3, strides=2, padding="same", activation="relu", name="up1")(signal)
    x = layers.Conv1DTranspose(5, 1, strides=2, padding="valid", name="up2")(x)
    x = layers.Conv1DTranspose(5, 3, strides=2, padding="same", output_padding=0, name="up_op")(x)
    x = layers.Conv1DTranspose(5, 3, dilation_rate=2, padding="same", name="dilated")(x)
    return keras.Model(signal, layers.Conv1DTranspose(3, 4, strides=2, padding="same", name="up3")(x))


def transposes_3d(keras):
    layers = keras.layers
    volume = keras.Input((None, None, None, 2), name="volume")
    x = layers.Conv3DTranspose(4, 3, strides=2, padding="same", activation="relu", name="up1")(volume)
    return keras.Model(volume, layers.Conv3DTranspose(3, 2, strides=(1, 2, 2), padding="valid",
                                                      name="up2")(x))


def separable_1d(keras):
    layers = keras.layers
    signal = keras.Input((None, 4), name="signal")
    x = layers.Conv1D(6, 3, strides=2, groups=2, padding="same", name="grouped")(signal)
    x = layers.SeparableConv1D(8, 3, padding="same", depth_multiplier=2, name="sep")(x)
    x = layers.MaxPooling1D(2, name="max")(x)
    x = layers.AveragePooling1D(3, strides=2, padding="same", name="avg")(x)
    return keras.Model(signal, layers.GlobalAveragePooling1D(name="gap")(x))


# model -> (builder, the shapes of its input without the batch at two sizes, input kind)
MODELS = {
    "text_cnn": (text_cnn, [(11,), (20,)], "ids"),
    "sequence_mix": (sequence_mix, [(7,), (13,)], "ids"),
    "video_net": (video_net, [(4, 8, 8, 3), (5, 10, 12, 3)], "floats"),
    "unet": (unet, [(16, 16, 3), (24, 20, 3)], "floats"),
    "unet_upsampling": (functools.partial(unet, up=upsampling_up), [(16, 16, 3), (24, 20, 3)], "floats"),
    "transposes_1d": (transposes_1d, [(5, 4), (9, 4)], "floats"),
    "transposes_3d": (transposes_3d, [(2, 3, 4, 2), (3, 3, 2, 2)], "floats"),
    "separable_1d": (separable_1d, [(17, 4), (30, 4)], "floats"),
}
CASES = [(name, "keras", fmt) for name in MODELS for fmt in ("savedmodel", "keras")]
CASES += [("text_cnn", "tf_keras", "h5"), ("sequence_mix", "tf_keras", "h5"), ("unet", "tf_keras", "h5"),
          ("unet", "tf_keras", "savedmodel"), ("unet_upsampling", "tf_keras", "h5")]


def _randomise(model, seed: int) -> None:
    """Random weights away from Keras' init (biases and BN statistics non-zero)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.name or "gamma" in weight.name:  # positive, about 1
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.3, shape)
        weight.assign(value.astype("float32"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(model, framework) -> (the Keras model, {format: path}), built once."""
    import_tf()
    cache = {}

    def get(name: str, framework: str):
        if (name, framework) not in cache:
            import keras
            import tf_keras

            module = keras if framework == "keras" else tf_keras
            keras.utils.set_random_seed(7)
            model = MODELS[name][0](module)
            _randomise(model, seed=len(name))
            folder = tmp_path_factory.mktemp(f"{name}_{framework}")
            paths = {}
            if framework == "keras":
                paths["keras"] = folder / f"{name}.keras"
                model.save(paths["keras"])
                paths["savedmodel"] = folder / name
                model.export(str(paths["savedmodel"]), verbose=False)
            else:
                paths["h5"] = folder / f"{name}.h5"
                model.save(paths["h5"])
                paths["savedmodel"] = folder / name
                model.save(paths["savedmodel"], save_format="tf")
            cache[name, framework] = model, paths
        return cache[name, framework]

    return get


def _inputs(kind: str, shape: tuple, batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "ids":
        return rng.integers(0, VOCAB, (batch, *shape)).astype(np.int32)
    return rng.uniform(-1, 1, (batch, *shape)).astype(np.float32)


def _channels_first(x: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW, NDHWC -> NCDHW (sequences and ids stay as they are)."""
    if x.ndim in (4, 5):
        return np.ascontiguousarray(x.transpose(0, x.ndim - 1, *range(1, x.ndim - 1)))
    return x


def _channels_last(y: np.ndarray) -> np.ndarray:
    return y.transpose(0, *range(2, y.ndim), 1) if y.ndim in (4, 5) else y


def convert(path, out):
    to_ir(path, None, None, out / "ir", quiet=True)
    build(out / "ir", out / "model", quiet=True)
    return import_generated(out / "model")


@pytest.fixture(scope="module")
def converted(sources, tmp_path_factory):
    """(model, framework, format) -> the folder of its generated model, converted once."""
    cache = {}

    def get(name: str, framework: str, fmt: str):
        if (name, framework, fmt) not in cache:
            out = tmp_path_factory.mktemp(f"{name}_{framework}_{fmt}")
            convert(sources(name, framework)[1][fmt], out)
            cache[name, framework, fmt] = out / "model"
        return cache[name, framework, fmt]

    return get


@pytest.mark.parametrize(("name", "framework", "fmt"), CASES,
                         ids=[f"{n}-{f}-{t}" for n, f, t in CASES])
def test_conv_model_matches_keras(name, framework, fmt, sources, converted) -> None:
    model, _ = sources(name, framework)
    module = import_generated(converted(name, framework, fmt))
    ours = module.load_model()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert sum(p.numel() for p in module.build_model().parameters()) == trainable
    _, shapes, kind = MODELS[name]
    for size, shape in enumerate(shapes):
        for batch in (1, 3):
            x = _inputs(kind, shape, batch, seed=batch + 10 * size)
            expected = model(x).numpy()
            with torch.no_grad():
                got = _channels_last(ours(torch.from_numpy(_channels_first(x))).numpy())
            assert got.shape == expected.shape, (name, shape, batch)
            error = float(np.abs(got - expected).max() / np.abs(expected).max())
            print(f"\n{name} [{framework} {fmt}] {shape} batch {batch}: {error:.2e}", end="")
            assert error <= TOLERANCE, (name, fmt, shape, batch, error)


def test_text_cnn_reads_like_pytorch(converted) -> None:
    """nn.Conv1d on [N, C, T] from the embedding on: one transpose after the embedding, the
    causal conv's pad folded into PaddedConv1d, the dilated 'same' conv a plain padding=2."""
    code = (converted("text_cnn", "keras", "keras") / "model.py").read_text()
    for text in ("nn.Embedding(50, 8)", "nn.Conv1d(8, 12, kernel_size=3, padding=1)",
                 "PaddedConv1d(12, 12, kernel_size=3, pad=(4, 0), dilation=2)",
                 "nn.Conv1d(12, 10, kernel_size=3, padding=2, dilation=2)", ".amax(dim=(2,))"):
        assert text in code, text
    assert code.count(".permute(") == 1


def test_video_net_reads_like_pytorch(converted) -> None:
    """NCDHW throughout: nn.Conv3d, TF 'SAME' pooling and strided conv of any size as
    MaxPool3dSame / Conv3dSame, the global average a mean over (D, H, W)."""
    code = (converted("video_net", "keras", "keras") / "model.py").read_text()
    for text in ("nn.Conv3d(3, 8, kernel_size=3, padding=1)", "MaxPool3dSame(2, stride=2)",
                 "Conv3dSame(8, 12, kernel_size=(1, 3, 3), stride=(1, 2, 2))", "dim=(2, 3, 4)",
                 "Input: float32 [N, 3, ?, ?, ?] (NCDHW)", "torch.channels_last_3d"):
        assert text in code, text
    assert ".permute(" not in code


def test_unet_reads_like_pytorch(converted) -> None:
    code = (converted("unet", "keras", "keras") / "model.py").read_text()
    for text in ("ConvTranspose2dCrop(32, 16, kernel_size=3, stride=2, trim=(1, 1))",
                 "torch.cat(", "nn.MaxPool2d(2"):
        assert text in code, text
    assert ".permute(" not in code


@pytest.mark.parametrize("name", ["text_cnn", "unet"])
def test_gradients_match_tensorflow(name, sources, converted, tmp_path) -> None:
    """`verify --grad`: d sum(output * R) / d every parameter against tf.gradients. The text
    CNN's embedding gradient comes from TF as IndexedSlices; the U-Net's output is an image
    (R and the forward are compared in TF's layout). The U-Net at a fixed size: verify draws
    no image sizes."""
    from codegen.verify.grad import verify_grad

    if name == "text_cnn":
        model, paths = sources(name, "keras")
        source, generated = paths["keras"], converted(name, "keras", "keras")
    else:
        import keras

        keras.utils.set_random_seed(7)
        model = unet(keras, size=16)
        _randomise(model, seed=3)
        source, generated = tmp_path / "unet.keras", tmp_path / "model"
        model.save(source)
        convert(source, tmp_path)
    report = verify_grad(source, None, generated)
    assert not report.problems(TOLERANCE) and not report.uncompared_parameters()
    parameters = [row for row in report.rows if row.value_rel is not None]  # inputs have none
    assert len(parameters) == len(model.trainable_weights)
    worst = max(row.grad_rel for row in report.rows)
    print(f"\n{name}: worst gradient {worst:.2e}, forward {report.outputs[0][1]:.2e}", end="")
    assert worst <= TOLERANCE


def test_per_layer_verify_compares_1d_layers(sources, converted) -> None:
    """`verify --per-layer`: each nn.Conv1d / pool output [N, C, T] against its TF tensor
    ([N, T, C], or [N, 1, T, C] inside SeparableConv1D)."""
    from codegen.verify.layers import verify_layers

    _, paths = sources("separable_1d", "keras")
    report = verify_layers(paths["keras"], None, converted("separable_1d", "keras", "keras"),
                           quiet=True)
    assert len(report.rows) >= 5
    assert all(row.rel <= TOLERANCE for row in report.rows), report.rows
