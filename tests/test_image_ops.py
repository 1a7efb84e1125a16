"""TF's image resampling and pixel shuffles against the generated PyTorch: each sampling
TF offers is either the F.interpolate mode that computes the same numbers (checked here on
upscales, downscales and non-integer ratios, with the size fixed, a multiple of the input's
or read from another tensor at run time) or refused at to-ir with the mode named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import check_export_and_compile

from codegen.backends.pytorch.build import build
from codegen.errors import Exit, UnsupportedOpsError
from codegen.frontends.tensorflow.compat import import_tf
from codegen.frontends.tensorflow.to_ir import to_ir
from codegen.verify import import_generated

SIZES = [(9, 11), (16, 6), (5, 20)]  # input sizes: outputs (7, 9) are up, down and in between
OUTPUTS = ["fixed", "scaled", "like"]


def _resize(tf, name: str):
    ops = tf.raw_ops
    return {
        "nearest": lambda x, s: ops.ResizeNearestNeighbor(images=x, size=s),
        "nearest_half_pixel": lambda x, s: ops.ResizeNearestNeighbor(
            images=x, size=s, half_pixel_centers=True),
        "bilinear": lambda x, s: ops.ResizeBilinear(images=x, size=s, half_pixel_centers=True),
        "bilinear_align_corners": lambda x, s: ops.ResizeBilinear(images=x, size=s,
                                                                  align_corners=True),
        "antialias_bilinear": lambda x, s: tf.image.resize(x, s, antialias=True),
        "antialias_bicubic": lambda x, s: tf.image.resize(x, s, "bicubic", antialias=True),
        # no F.interpolate mode: TF's own arithmetic, the generated helper tf_resize
        "nearest_align_corners": lambda x, s: ops.ResizeNearestNeighbor(images=x, size=s,
                                                                        align_corners=True),
        "bilinear_legacy": lambda x, s: ops.ResizeBilinear(images=x, size=s),
        "bicubic": lambda x, s: tf.image.resize(x, s, "bicubic"),
        "bicubic_legacy": lambda x, s: ops.ResizeBicubic(images=x, size=s),
        "bicubic_align_corners": lambda x, s: ops.ResizeBicubic(images=x, size=s,
                                                                align_corners=True),
    }[name]


def _graph(tf, resize, shape=(None, None, None, 3)):
    """Three resizes of one input: to a fixed size, by (2, 3), to a skip tensor's size."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape, name="input")
        tf.identity(resize(x, tf.constant([7, 9])), name="fixed")
        tf.identity(resize(x, tf.shape(x)[1:3] * tf.constant([2, 3])), name="scaled")
        skip = tf.nn.avg_pool2d(x, 2, 2, "SAME")
        small = tf.nn.max_pool2d(x, 3, 3, "VALID")
        tf.add(resize(small, tf.shape(skip)[1:3]), skip, name="like")
    return graph


def _convert(tf, graph, tmp_path, outputs):
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    to_ir(tmp_path / "g.pb", None, outputs, tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    source = (tmp_path / "model" / "model.py").read_text()
    return import_generated(tmp_path / "model"), " ".join(source.split())  # black's breaks aside


def _compare(tf, graph, model, outputs, sizes, batch: int = 2) -> float:
    rng = np.random.default_rng(0)
    worst = 0.0
    for height, width in sizes:
        images = rng.normal(0, 1, (batch, height, width, 3)).astype(np.float32)
        with tf.compat.v1.Session(graph=graph) as session:
            expected = session.run([f"{name}:0" for name in outputs], {"input:0": images})
        with torch.no_grad():
            ours = model.load_model()(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
        ours = ours if isinstance(ours, tuple) else (ours,)
        for mine, reference in zip(ours, expected):
            mine = mine.numpy().transpose(0, 2, 3, 1)
            assert mine.shape == reference.shape
            worst = max(worst, float(np.abs(mine - reference).max() / np.abs(reference).max()))
    return worst


FORMS = {
    "nearest": 'mode="nearest"',
    "nearest_half_pixel": 'mode="nearest-exact"',
    "bilinear": 'mode="bilinear", align_corners=False',
    "bilinear_align_corners": 'mode="bilinear", align_corners=True',
    "antialias_bilinear": 'mode="bilinear", align_corners=False, antialias=True',
    "antialias_bicubic": 'mode="bicubic", align_corners=False, antialias=True',
    "nearest_align_corners": '"nearest",align_corners=True',  # tf_resize's arguments
    "bilinear_legacy": '"bilinear"',
    "bicubic": '"bicubic",half_pixel_centers=True',
    "bicubic_legacy": '"bicubic"',
    "bicubic_align_corners": '"bicubic",align_corners=True',
}


@pytest.mark.parametrize("name", list(FORMS))
def test_resize_matches_tensorflow(name, tmp_path) -> None:
    tf = import_tf()
    graph = _graph(tf, _resize(tf, name))
    model, source = _convert(tf, graph, tmp_path, OUTPUTS)
    error = _compare(tf, graph, model, OUTPUTS, SIZES)
    print(f"\n{name}: {error:.3g}", end="")
    if name in ("bilinear", "bicubic"):  # F.interpolate, and the tf_resize helper
        check_export_and_compile(model.load_model(), torch.randn(2, 3, 13, 17))
    assert error <= 1e-5, (name, error)
    if "mode=" in FORMS[name]:
        assert source.count(FORMS[name]) == 3, source
        assert "size=(7, 9)" in source and "scale_factor=(2, 3)" in source
        assert "size=pool.shape[-2:]" in source, source  # the skip's size, read at run time
    else:  # tf_resize(x, size, mode, ...): TF's arithmetic, no F.interpolate mode
        compact, form = "".join(source.split()), FORMS[name]
        assert f"tf_resize(x,(7,9),{form})" in compact, source
        assert f"tf_resize(x,None,{form},scale_factor=(2,3))" in compact, source
        assert f"pool.shape[-2:],{form})" in compact, source


def test_area(tmp_path) -> None:
    """F.interpolate's area where the output size divides the input's or is 2 ** k times
    it; TF's overlap weights (tf_resize) at the other ratios, down and up."""
    tf = import_tf()
    graph = tf.Graph()
    outputs = {"down": [4, 6], "up": [24, 72], "odd_down": [7, 5], "odd_up": [17, 25],
               "up_by_3": [36, 54]}
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 12, 18, 3), name="input")
        for name, size in outputs.items():
            tf.identity(tf.image.resize(x, size, "area"), name=name)
    model, source = _convert(tf, graph, tmp_path, list(outputs))
    error = _compare(tf, graph, model, list(outputs), [(12, 18)], batch=3)
    print(f"\narea: {error:.3g}", end="")
    assert error <= 1e-6
    assert source.count('mode="area"') == 2, source  # 12 -> 4, 18 -> 6; 12 -> 24, 18 -> 72
    compact = "".join(source.split())
    for size in ("(7,5)", "(17,25)", "(36,54)"):  # TF's float32 scale 1/3 rounds up: its own
        assert f'tf_resize(x,{size},"area")' in compact, source


REFUSED = {
    "'lanczos3' kernel": lambda tf, x: tf.image.resize(x, [7, 9], "lanczos3", antialias=True),
}


@pytest.mark.parametrize("mode", list(REFUSED))
def test_inexact_modes_are_refused_by_name(mode, tmp_path) -> None:
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 12, 18, 3), name="input")
        tf.identity(REFUSED[mode](tf, x), name="output")
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(UnsupportedOpsError, match=mode) as error:
        to_ir(tmp_path / "g.pb", None, ["output"], tmp_path / "ir", quiet=True)
    assert error.value.exit_code == Exit.UNSUPPORTED == 4
    assert not (tmp_path / "ir").exists()


def test_small_math_ops_match_tensorflow(tmp_path) -> None:
    """Round halves to even; ClipByValue, clip_by_value (Minimum then Maximum) and Maximum
    with Python numbers are x.clamp (not torch.minimum(x, 6.0), which raises); Cumsum's
    exclusive and reverse, on NCHW axes."""
    tf = import_tf()
    graph = tf.Graph()
    names = ["round", "clip", "clip_op", "relu_floor", "cumsum_w", "cumsum_c", "cumsum_h"]
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4, 6, 3), name="input")
        tf.round(tf.floor(x * 4) / 2, name="round")  # every value a multiple of 1/2
        tf.clip_by_value(x, -0.5, 1.0, name="clip")  # Minimum, then Maximum
        tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.5, clip_value_max=1.0, name="clip_op")
        tf.maximum(x, 0.25, name="relu_floor")
        tf.cumsum(x, axis=2, exclusive=True, reverse=True, name="cumsum_w")
        tf.cumsum(x, axis=-1, name="cumsum_c")
        tf.cumsum(x, axis=1, exclusive=True, name="cumsum_h")
    model, source = _convert(tf, graph, tmp_path, names)
    assert _compare(tf, graph, model, names, [(4, 6)], batch=3) <= 1e-6
    assert source.count("x.clamp(min=-0.5, max=1.0)") == 2, source  # the op, and the pair
    assert "x.clamp(min=0.25)" in source and ").clamp(" not in source, source
    assert "torch.maximum" not in source and "torch.round(div)" in source
    assert "F.pad(x, (0, 0, 1, -1)).cumsum(2)" in source, source  # exclusive along H
    assert "F.pad(x, (-1, 1)).flip(3).cumsum(3).flip(3)" in source, source  # W, from the end
    assert "x.cumsum(1)" in source, source  # the channels


def test_depth_to_space_and_back(tmp_path) -> None:
    """TF orders DepthToSpace's channels block-major (DCR), pixel_shuffle channel-major: a
    view puts them in order (on a graph input, nothing to permute); SpaceToDepth likewise."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3), name="input")
        tiled = tf.concat([x * float(k + 1) for k in range(4)], axis=3)  # 12 channels
        tf.identity(tf.nn.depth_to_space(tiled, 2), name="d2s")
        tf.identity(tf.nn.space_to_depth(x, 2), name="s2d")
    model, source = _convert(tf, graph, tmp_path, ["d2s", "s2d"])
    assert _compare(tf, graph, model, ["d2s", "s2d"], [(4, 6), (8, 2)], batch=3) == 0.0
    compact = "".join(source.split())
    assert ".unflatten(1,(4,-1)).transpose(1,2).flatten(1,2),2" in compact, source
    assert "F.pixel_unshuffle(x,2).unflatten(1,(-1,4)).transpose(1,2).flatten(1,2)" in compact


def test_conv_before_depth_to_space_is_permuted_and_verified_per_layer(tmp_path) -> None:
    """conv -> bias -> tanh -> DepthToSpace: the conv's output channels are permuted once
    into pixel_shuffle's order; verify --per-layer reads TF's conv output in that order
    (no false jump at the conv)."""
    from codegen.verify.layers import verify_layers

    tf = import_tf()
    rng = np.random.default_rng(3)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 6, 8, 3), name="input")
        kernel = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 12)).astype(np.float32))
        bias = tf.constant(rng.normal(0, 0.5, 12).astype(np.float32))
        h = tf.tanh(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
        tf.identity(tf.nn.depth_to_space(h, 2), name="output")
    model, source = _convert(tf, graph, tmp_path, ["output"])
    assert _compare(tf, graph, model, ["output"], [(6, 8)], batch=3) <= 1e-6
    assert "F.pixel_shuffle(torch.tanh(self.conv(x)), 2)" in source, source
    report = verify_layers(tmp_path / "g.pb", None, tmp_path / "model", quiet=True)
    assert not report.skipped and len(report.rows) == 2, report
    assert report.first_jump is None and report.worst.rel <= 1e-6, report
