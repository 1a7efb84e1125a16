"""Tests of the TF-slim model zoo and of random-weights checkpoint writing."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import io
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import check_export_and_compile, load_generated

from codegen.errors import InputError, NetworkError, UsageError
from codegen.frontends.tensorflow.compat import import_slim, import_tf
from codegen.zoo import slim as zoo

tf = import_tf()
slim = import_slim()
from tf_slim.nets import resnet_v1, resnet_v2  # after import_slim: it needs the alias

from codegen.zoo.calibrate import build_graph, random_value
from codegen.zoo.residual import residual_branch_ends

SIZE = 32
FILES = (".meta", ".index", ".data-00000-of-00001")


def tiny_resnet(num_classes: int = 5):
    """A two-block resnet_v2 build_fn, wrapped in its own arg scope as callers do."""

    def build(inputs, is_training):
        blocks = [
            resnet_v2.resnet_v2_block("block1", base_depth=4, num_units=2, stride=2),
            resnet_v2.resnet_v2_block("block2", base_depth=8, num_units=1, stride=1),
        ]
        with slim.arg_scope(resnet_v2.resnet_arg_scope()):
            net, _ = resnet_v2.resnet_v2(
                inputs,
                blocks,
                num_classes=num_classes,
                is_training=is_training,
                scope="resnet_v2_tiny",
            )
        return net

    return build


def tiny_resnet_v1(inputs, is_training):
    """A one-block resnet_v1 (projection unit, then an identity unit)."""
    blocks = [resnet_v1.resnet_v1_block("block1", base_depth=4, num_units=2, stride=2)]
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        net, _ = resnet_v1.resnet_v1(inputs, blocks, num_classes=5, is_training=is_training,
                                     scope="resnet_v1_tiny")
    return net


def run_checkpoint(prefix: Path, images: np.ndarray) -> np.ndarray:
    """Import prefix.meta, restore the variables and return `output` for `images`."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        saver = tf.compat.v1.train.import_meta_graph(f"{prefix}.meta")
        saver.restore(session, str(prefix))
        return session.run("output:0", feed_dict={"input:0": images})


def variables(prefix: Path) -> dict[str, np.ndarray]:
    """All variables stored at `prefix`."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def images(count: int, size: int = SIZE, seed: int = 99) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype(np.float32)


def assert_sane(logits: np.ndarray) -> None:
    assert np.isfinite(logits).all()
    assert 0.1 < float(logits.std()) < 100


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "tiny.ckpt"
    return zoo.write_checkpoint(tiny_resnet(), out, image_size=SIZE, seed=0)


def test_write_checkpoint_files_and_graph(tiny_ckpt: Path) -> None:
    assert all(Path(f"{tiny_ckpt}{suffix}").is_file() for suffix in FILES)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.train.import_meta_graph(f"{tiny_ckpt}.meta")
        assert graph.get_operation_by_name("input").type == "Placeholder"
        assert graph.get_tensor_by_name("input:0").shape.as_list() == [None, SIZE, SIZE, 3]
        assert graph.get_tensor_by_name("output:0").shape.as_list() == [None, 5]


@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape_and_values(tiny_ckpt: Path, batch: int) -> None:
    logits = run_checkpoint(tiny_ckpt, images(batch))
    assert logits.shape == (batch, 5)
    assert np.isfinite(logits).all()
    if batch > 1:
        assert_sane(logits)


def test_batchnorm_statistics_are_calibrated(tiny_ckpt: Path) -> None:
    values = variables(tiny_ckpt)
    means = [v for k, v in values.items() if k.endswith("moving_mean")]
    variances = [v for k, v in values.items() if k.endswith("moving_variance")]
    assert len(means) == len(variances) == 10
    assert all(np.abs(m).max() > 0 for m in means)
    assert all((v > 0).all() and not np.allclose(v, 1) for v in variances)


def test_same_seed_same_weights_other_seed_other_weights(tiny_ckpt: Path, tmp_path) -> None:
    again = zoo.write_checkpoint(tiny_resnet(), tmp_path / "a.ckpt", image_size=SIZE, seed=0)
    other = zoo.write_checkpoint(tiny_resnet(), tmp_path / "b.ckpt", image_size=SIZE, seed=1)
    first, second, third = variables(tiny_ckpt), variables(again), variables(other)
    assert first.keys() == second.keys() == third.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    weights = [n for n in first if n.endswith("weights")]
    assert all(not np.array_equal(first[n], third[n]) for n in weights)


def test_uncalibrated_keeps_default_statistics(tmp_path) -> None:
    prefix = zoo.write_checkpoint(
        tiny_resnet(), tmp_path / "raw.ckpt", image_size=SIZE, calibrate=False
    )
    values = variables(prefix)
    assert all(not v.any() for k, v in values.items() if k.endswith("moving_mean"))
    assert all((v == 1).all() for k, v in values.items() if k.endswith("moving_variance"))


@pytest.mark.parametrize("build, scope, units, closing", [
    (tiny_resnet(), "resnet_v2_tiny/{}/bottleneck_v2/conv3/",
     ["block1/unit_1", "block1/unit_2", "block2/unit_1"], ["weights", "biases"]),
    (tiny_resnet_v1, "resnet_v1_tiny/{}/bottleneck_v1/conv3/BatchNorm/",
     ["block1/unit_1", "block1/unit_2"], ["gamma", "beta"]),
])
def test_residual_branch_ends_found_by_wiring(build, scope, units, closing) -> None:
    _, inputs, output = build_graph(build, SIZE, is_training=False)
    ends = residual_branch_ends(inputs, output)
    # the branch's closing layer, never the shortcut's projection
    assert ends == [[scope.format(unit) + role for role in closing] for unit in units]


def test_no_residual_branch_in_a_sum_of_equals() -> None:
    def two_paths(x, is_training):
        summed = slim.conv2d(x, 4, [3, 3], scope="a") + slim.conv2d(x, 4, [1, 1], scope="b")
        return slim.fully_connected(slim.flatten(summed), 3, activation_fn=None, scope="fc")

    _, inputs, output = build_graph(two_paths, 8, is_training=False)
    assert residual_branch_ends(inputs, output) == []


def test_residual_branches_scaled_by_inverse_sqrt_count(tiny_ckpt: Path) -> None:
    values = variables(tiny_ckpt)
    weights = [n for n in values if n.endswith(("weights", "biases")) and "/logits/" not in n]
    assert sum("/conv3/" in n for n in weights) == 6  # 3 residual units
    for name in weights:
        raw = random_value(name, values[name].shape, values[name].dtype, seed=0)
        scale = 3**-0.5 if "/conv3/" in name else 1.0
        np.testing.assert_allclose(values[name], raw * scale, rtol=1e-6, err_msg=name)


def test_rank2_logits_and_bad_logits(tmp_path) -> None:
    def flat(inputs, is_training):
        return slim.fully_connected(slim.flatten(inputs), 4, activation_fn=None, scope="fc")

    prefix = zoo.write_checkpoint(flat, tmp_path / "flat.ckpt", image_size=8)
    assert run_checkpoint(prefix, images(2, 8)).shape == (2, 4)
    with pytest.raises(UsageError, match="logits"):
        zoo.write_checkpoint(
            lambda x, t: slim.conv2d(x, 3, [1, 1], scope="c"), tmp_path / "c.ckpt", image_size=8
        )


def test_real_resnet_v2_50_is_sane(tmp_path) -> None:
    prefix = zoo.extract("resnet_v2_50", tmp_path, random_weights=True, image_size=224)
    logits = run_checkpoint(prefix, images(2, 224))
    assert logits.shape == (2, 1001)
    assert_sane(logits)


def make_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def official_like_tarball(prefix: Path, checkpoint: str, path: Path, folder: str = "") -> Path:
    """A tarball laid out like TF-slim's: only `checkpoint`.index/.data, plus junk."""
    members = {
        f"{folder}{checkpoint}{suffix}": Path(f"{prefix}{suffix}").read_bytes()
        for suffix in FILES[1:]
    }
    members["../escape.ckpt.index"] = b"outside"
    members["eval.graph"] = b"unrelated"
    return make_tarball(path, members)


def test_extract_random_then_from_tarball(tmp_path) -> None:
    options = {"image_size": 64, "num_classes": 7}
    out = tmp_path / "random" / "deeper"
    prefix = zoo.extract("resnet_v2_50", out, random_weights=True, **options)
    assert prefix == out / "imagenet_resnet_v2_50.ckpt"
    assert sorted(p.name for p in out.iterdir()) == sorted(prefix.name + s for s in FILES)
    assert [p.name for p in out.parent.iterdir()] == ["deeper"]  # no staging leftovers
    logits = run_checkpoint(prefix, images(3, 64))
    assert logits.shape == (3, 7)
    assert_sane(logits)

    tarball = official_like_tarball(prefix, "resnet_v2_50.ckpt", tmp_path / "t.tar.gz", "./")
    restored = zoo.extract("resnet_v2_50", tmp_path / "restored", tarball=tarball, **options)
    original, copy = variables(prefix), variables(restored)
    assert original.keys() == copy.keys()
    assert all(np.array_equal(original[k], copy[k]) for k in original)
    np.testing.assert_allclose(run_checkpoint(restored, images(3, 64)), logits, rtol=1e-5)
    assert not (tmp_path / "escape.ckpt.index").exists()


@pytest.fixture
def tiny_zoo(monkeypatch):
    """Make the zoo's resnet_v2_50 build the tiny resnet (for fast tarball tests)."""
    monkeypatch.setattr(zoo, "zoo_build_fn", lambda entry, classes: tiny_resnet(classes))


def test_tarball_with_old_single_file_checkpoint(tiny_zoo, tmp_path) -> None:
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tiny_resnet()(tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3]), False)
        session.run(tf.compat.v1.global_variables_initializer())
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)
        v1 = saver.save(session, str(tmp_path / "resnet_v2_50.ckpt"), write_meta_graph=False)
    tarball = make_tarball(tmp_path / "v1.tar.gz", {"resnet_v2_50.ckpt": Path(v1).read_bytes()})
    prefix = zoo.extract(
        "resnet_v2_50", tmp_path / "out", tarball=tarball, image_size=SIZE, num_classes=5
    )
    assert run_checkpoint(prefix, images(2)).shape == (2, 5)


def test_tarball_that_does_not_match(tiny_zoo, tiny_ckpt, tmp_path) -> None:
    tarball = official_like_tarball(tiny_ckpt, "resnet_v2_50.ckpt", tmp_path / "t.tar.gz")
    with pytest.raises(InputError, match="resnet_v2_50.ckpt.*logits/weights has shape"):
        zoo.extract("resnet_v2_50", tmp_path / "out", tarball=tarball, num_classes=3)
    assert not (tmp_path / "out").exists()


def test_tarball_without_the_checkpoint(tmp_path) -> None:
    unsafe = {
        "vgg_16.ckpt": b"x",
        "../resnet_v2_50.ckpt.index": b"x",
        "/abs/resnet_v2_50.ckpt.index": b"x",
        "a/b/resnet_v2_50.ckpt.index": b"x",
    }
    tarball = make_tarball(tmp_path / "t.tar.gz", unsafe)
    with pytest.raises(InputError, match="holds no checkpoint resnet_v2_50.ckpt"):
        zoo.extract("resnet_v2_50", tmp_path / "out", tarball=tarball)
    with pytest.raises(InputError, match="cannot read the tarball"):
        zoo.extract("resnet_v2_50", tmp_path / "out", tarball=tmp_path / "missing.tar.gz")


def test_zoo_table() -> None:
    assert len(zoo.ZOO) == 15
    entry = zoo.ZOO["resnet_v2_152"]
    assert entry.url == "http://download.tensorflow.org/models/resnet_v2_152_2017_04_14.tar.gz"
    assert (entry.checkpoint, entry.num_classes, entry.image_size) == (
        "resnet_v2_152.ckpt",
        1001,
        224,
    )
    assert zoo.ZOO["vgg_16"].num_classes == zoo.ZOO["resnet_v1_50"].num_classes == 1000
    assert zoo.ZOO["inception_v3"].image_size == 299
    assert zoo.ZOO["overfeat"].image_size == 231
    assert zoo.ZOO["alexnet_v2"].url is None and zoo.ZOO["overfeat"].url is None
    for entry in zoo.ZOO.values():
        assert callable(entry.network()) and entry.scope() is not None


def test_unknown_name_and_missing_official_checkpoint(tmp_path) -> None:
    with pytest.raises(UsageError, match="did you mean resnet_v2_50.*known models: resnet_v1_50"):
        zoo.extract("resnet_v2_05", tmp_path)
    with pytest.raises(UsageError, match="no official checkpoint for overfeat.*--random-weights"):
        zoo.extract("overfeat", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_failure_is_a_quick_network_error(monkeypatch, tmp_path) -> None:
    entry = dataclasses.replace(zoo.ZOO["resnet_v2_50"], url="http://127.0.0.1:9/x.tar.gz")
    monkeypatch.setitem(zoo.ZOO, "resnet_v2_50", entry)
    start = time.monotonic()
    with pytest.raises(NetworkError) as info:
        zoo.extract("resnet_v2_50", tmp_path / "out", progress=False)
    assert time.monotonic() - start < 20
    message = info.value.message
    assert "http://127.0.0.1:9/x.tar.gz" in message and "\n" not in message
    assert "--random-weights" in message and "--from-tarball" in message
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def http_folder(tmp_path):
    """Serve tmp_path/"www" on a loopback HTTP server; yields (folder, base url)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_a_server(tiny_zoo, tiny_ckpt, http_folder, monkeypatch, tmp_path) -> None:
    folder, base = http_folder
    official_like_tarball(tiny_ckpt, "resnet_v2_50.ckpt", folder / "r.tar.gz")
    entry = dataclasses.replace(zoo.ZOO["resnet_v2_50"], url=f"{base}/r.tar.gz")
    monkeypatch.setitem(zoo.ZOO, "resnet_v2_50", entry)
    prefix = zoo.extract("resnet_v2_50", tmp_path / "out", num_classes=5, image_size=SIZE)
    stored = variables(tiny_ckpt)
    assert all(np.array_equal(stored[k], v) for k, v in variables(prefix).items())

    missing = dataclasses.replace(entry, url=f"{base}/missing.tar.gz")
    monkeypatch.setitem(zoo.ZOO, "resnet_v2_50", missing)
    with pytest.raises(NetworkError, match="HTTP Error 404"):
        zoo.extract("resnet_v2_50", tmp_path / "other")


def test_a_hanging_connection_gives_up(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(zoo, "CONNECT_DEADLINE", 0.2)
    monkeypatch.setattr(zoo.urllib.request, "urlopen", lambda *a, **k: time.sleep(5))
    with pytest.raises(NetworkError, match=r"no answer within .*--from-tarball PATH"):
        zoo.extract("vgg_16", tmp_path / "out")


@pytest.mark.zoo
@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_every_zoo_model_at_its_default_size(name: str, tmp_path) -> None:
    """Each TF-slim zoo net at its own size: TF's logits are sane; it converts, matches TF
    where CONVERTED names it, and its model passes torch.export and torch.compile (one
    extraction and one conversion for all of it: at full size they are the slow part)."""
    prefix = zoo.extract(name, tmp_path, random_weights=True)
    size = zoo.ZOO[name].image_size
    logits = run_checkpoint(prefix, images(2, size))
    assert logits.shape == (2, zoo.ZOO[name].num_classes)
    assert_sane(logits)
    assert_converts(Path(f"{prefix}.meta"), tmp_path, compare=name in CONVERTED)
    model = load_generated(tmp_path / "model").load_model()
    check_export_and_compile(model, torch.randn(1, 3, size, size))


# The TF-slim matrix; resnet_v2_50 and resnet_v2_152 are converted (with golden
# files) in test_zoo_models.py.
CONVERTED = {"resnet_v1_50", "resnet_v1_152", "resnet_v2_101", "resnet_v2_200", "vgg_16",
             "inception_v1", "inception_v2", "inception_v3", "alexnet_v2"}


def assert_converts(meta: Path, tmp_path: Path, compare: bool = True) -> None:
    """to-ir + build (+ verify, with `compare`) in this process: within 1e-4 of TF at batch
    4 and 1."""
    from codegen.backends.pytorch.build import build
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.verify import verify

    to_ir(meta, None, ["output"], tmp_path / "ir", quiet=True)
    build(tmp_path / "ir", tmp_path / "model", quiet=True)
    if not compare:
        return
    for r in verify(meta, None, tmp_path / "model"):
        print(f"\n{meta.stem} batch {r.batch}: {r.rel_error:.3g} "
              f"(float64: TF {r.tf_vs_f64:.3g}, ours {r.ours_vs_f64:.3g})", end="")
        assert r.rel_error <= 1e-4, r
        assert r.ours_vs_f64 <= 1.5 * r.tf_vs_f64 + 1e-7, r
