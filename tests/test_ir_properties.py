"""Property tests: whatever a mutated graph.json or weight file holds, loading it either
succeeds or raises the project's own error (CodegenError); never any other exception."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codegen.errors import CodegenError
from codegen.ir.validate import load_ir
from codegen.ir.weights import load_array

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(["name", "op", "inputs", "outputs", "attrs", "weights", "shape", "dtype",
                        "file", "sha256", "source", "scope", "tf_name", "layout", "version"])


@pytest.fixture(scope="module")
def small_ir(tiny_build, tmp_path_factory) -> Path:
    """The tiny ResNet V2's IR (a real one: every op family of it, 92 weights)."""
    target = tmp_path_factory.mktemp("prop") / "ir"
    shutil.copytree(tiny_build / "ir", target)
    return target


def draw_path(data, document) -> list:
    """A random path into the document (possibly the root)."""
    path, node = [], document
    for _ in range(data.draw(st.integers(0, 6), label="depth")):
        if not isinstance(node, (dict, list)) or not node:
            break
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys), label="key")
        path.append(key)
        node = node[key]
    return path


def get(document, path):
    for key in path:
        document = document[key]
    return document


def _rename(document, old: str, new: str, count: int):
    """Rename node `old` in its first `count` mentions (its name and tensor refs)."""
    done = 0

    def walk(value):
        nonlocal done
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str) and done < count and (value == old or value.startswith(old + ":")):
            done += 1
            return new + value[len(old):]
        return value

    return walk(document)


def _node_names(document) -> list[str]:
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if not isinstance(nodes, list):
        return []
    return [n["name"] for n in nodes if isinstance(n, dict) and isinstance(n.get("name"), str)]


def mutate(data, document):
    """One random change: delete, replace, retype, add a key, copy a part elsewhere, rename
    a node (in some of the places it is named), or duplicate a list item."""
    kind = data.draw(st.sampled_from(["delete", "replace", "retype", "add", "copy", "rename",
                                      "duplicate"]), label="kind")
    path = draw_path(data, document)
    names = _node_names(document)
    if kind == "rename" and names:
        old = data.draw(st.sampled_from(names), label="node")
        new = data.draw(st.text(min_size=1, max_size=8) | st.just(old + ":1"), label="new name")
        return _rename(document, old, new, data.draw(st.integers(1, 4), label="count"))
    if not path:
        return data.draw(JSON, label="root") if kind in ("replace", "retype") else document
    parent, key = get(document, path[:-1]), path[-1]
    if kind == "delete":
        del parent[key]
    elif kind == "replace":
        parent[key] = data.draw(JSON, label="value")
    elif kind == "retype":
        value = parent[key]
        parent[key] = ([value] if not isinstance(value, list) else {"0": value}) \
            if data.draw(st.booleans()) else str(value)
    elif kind == "add" and isinstance(parent, dict):
        parent[data.draw(KEYS, label="new key")] = data.draw(JSON, label="new value")
    elif kind == "copy":
        parent[key] = copy.deepcopy(get(document, draw_path(data, document)))
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    return document


@SETTINGS
@given(data=st.data())
def test_mutated_graph_json_loads_or_fails_cleanly(small_ir, tmp_path_factory, data):
    original = json.loads((small_ir / "graph.json").read_text())
    document = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        document = mutate(data, document)
    ir = tmp_path_factory.mktemp("mutated")
    (ir / "weights").symlink_to(small_ir / "weights")
    (ir / "graph.json").write_text(json.dumps(document))
    try:
        graph = load_ir(ir)
    except CodegenError as error:
        event(f"rejected: {type(error).__name__}")
        assert error.message and "\n" not in error.message  # one line
        return
    event("accepted")
    assert set(graph.nodes) == {node["name"] for node in document["nodes"]}


WEIGHT_DAMAGE = st.sampled_from(["truncate", "overwrite", "garbage", "other_array", "entry"])


@SETTINGS
@given(data=st.data())
def test_damaged_weight_loads_or_fails_cleanly(small_ir, tmp_path_factory, data):
    ir = tmp_path_factory.mktemp("damaged")
    shutil.copy(small_ir / "graph.json", ir / "graph.json")
    document = json.loads((ir / "graph.json").read_text())
    name = data.draw(st.sampled_from(sorted(document["weights"])), label="weight")
    entry = document["weights"][name]
    (ir / "weights").mkdir()
    for other in document["weights"].values():
        (ir / other["file"]).symlink_to(small_ir / other["file"])
    path = ir / entry["file"]
    path.unlink()
    raw = (small_ir / entry["file"]).read_bytes()
    damage = data.draw(WEIGHT_DAMAGE, label="damage")
    if damage == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    elif damage == "overwrite":
        at = data.draw(st.integers(0, len(raw) - 1), label="offset")
        patch = data.draw(st.binary(min_size=1, max_size=16), label="patch")
        raw = raw[:at] + patch + raw[at + len(patch):]
    elif damage == "garbage":
        raw = data.draw(st.binary(max_size=300), label="garbage")
    elif damage == "other_array":
        dtype = data.draw(st.sampled_from(["float32", "float64", "int8", "bool", "complex64",
                                           "<U3", "V4"]), label="dtype")
        shape = data.draw(st.lists(st.integers(0, 3), max_size=4), label="shape")
        np.save(path, np.zeros(shape, dtype), allow_pickle=False)
        raw = path.read_bytes()
        path.unlink()
    else:  # the table entry lies about the file
        entry[data.draw(st.sampled_from(["shape", "dtype", "sha256"]), label="field")] = \
            data.draw(JSON, label="value")
        (ir / "graph.json").write_text(json.dumps(document))
    path.write_bytes(raw)
    try:
        graph = load_ir(ir)
        array = load_array(ir, graph.weights[name], check_hash=True)
    except CodegenError as error:
        event(f"{damage}: rejected")
        assert error.message and "\n" not in error.message
        return
    event(f"{damage}: accepted")
    assert list(array.shape) == graph.weights[name].out_shape


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_weights_index_dumps_or_fails_cleanly(tiny_build, tmp_path_factory, data):
    """`codegen dump` reads OUT_DIR/weights/index.json: a damaged one is a clean error."""
    from codegen.tools.dump import dump

    source = tiny_build / "model"
    out = tmp_path_factory.mktemp("dump")
    (out / "weights").mkdir()
    index = json.loads((source / "weights" / "index.json").read_text())
    for key in index:
        (out / "weights" / f"{key}.npy").symlink_to(source / "weights" / f"{key}.npy")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        wrapped = mutate(data, {"index": index})
        index = wrapped.get("index") if isinstance(wrapped, dict) else wrapped
    (out / "weights" / "index.json").write_text(json.dumps(index))
    try:
        count = dump(out, out / "model.pth")
    except CodegenError as error:
        event("rejected")
        assert error.message and "\n" not in error.message
        return
    event("accepted")
    assert count == len(index) and (out / "model.pth").is_file()
