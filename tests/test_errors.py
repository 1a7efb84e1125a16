"""Bad input: one line naming the file or node, a documented exit code, no traceback,
nothing half-written."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import codegen


def assert_clean_error(result, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("codegen: error: ")
    for needle in needles:
        assert needle in result.stderr


def test_unknown_dst_node_suggests_names(tiny_checkpoint, tmp_path):
    result = codegen("to-ir", f"{tiny_checkpoint}.meta", "--dst-node", "outptu", "-o", tmp_path / "ir")
    assert_clean_error(result, 3, "'outptu'", "did you mean output")
    assert not (tmp_path / "ir").exists()


def test_missing_data_file(tiny_checkpoint, tmp_path):
    for suffix in (".meta", ".index"):
        shutil.copy(f"{tiny_checkpoint}{suffix}", tmp_path / f"c.ckpt{suffix}")
    result = codegen("to-ir", tmp_path / "c.ckpt.meta", "--dst-node", "output", "-o", tmp_path / "ir")
    assert_clean_error(result, 3, "data")


def test_meta_that_is_not_a_metagraph(tmp_path):
    (tmp_path / "bad.meta").write_bytes(b"\x00garbage" * 10)
    result = codegen("to-ir", tmp_path / "bad.meta", "-w", tmp_path / "bad", "--dst-node", "x",
                     "-o", tmp_path / "ir")
    assert_clean_error(result, 3, "bad.meta")


def test_unsupported_ops_are_listed_before_writing(tmp_path):
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        y = tf.math.cumsum(tf.math.cumsum(x, axis=1), axis=1)
        tf.identity(tf.math.floormod(y, 3.0), name="output")
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    result = codegen("to-ir", tmp_path / "g.pb", "--dst-node", "output", "-o", tmp_path / "ir")
    assert_clean_error(result, 4, "Cumsum x2", "FloorMod x1")
    assert not (tmp_path / "ir").exists()


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda text, data: "{not json", "not valid JSON"),
        (lambda text, data: json.dumps({**data, "version": 99}), "version"),
        (lambda text, data: json.dumps({**data, "nodes": data["nodes"] + [
            {**data["nodes"][0], "name": "warp", "op": "warp_drive"}]}), "unknown op"),
        (lambda text, data: json.dumps({**data, "nodes": [
            {**data["nodes"][0], "inputs": ["nowhere:0"]}] + data["nodes"][1:]}), "does not exist"),
    ],
)
def test_invalid_ir_is_rejected(tiny_build, tmp_path, mutate, needle):
    ir = tmp_path / "ir"
    shutil.copytree(tiny_build / "ir", ir)
    text = (ir / "graph.json").read_text()
    (ir / "graph.json").write_text(mutate(text, json.loads(text)))
    result = codegen("build", ir, "-o", tmp_path / "out")
    assert_clean_error(result, 5, needle)
    assert not (tmp_path / "out" / "model.py").exists()


def test_pickled_weight_file_is_refused(tiny_build, tmp_path):
    import numpy as np

    ir = tmp_path / "ir"
    shutil.copytree(tiny_build / "ir", ir)
    data = json.loads((ir / "graph.json").read_text())
    entry = next(iter(data["weights"].values()))
    np.save(ir / entry["file"], np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    result = codegen("build", ir, "-o", tmp_path / "out")
    assert_clean_error(result, 5, entry["file"])


def test_source_never_unpickles():
    from pathlib import Path

    import codegen as package

    unsafe = ("allow_pickle=True", "pickle.load", "weights_only=False")
    for path in Path(package.__file__).parent.rglob("*.py"):
        text = path.read_text()
        assert not any(form in text for form in unsafe), path
