"""codegen inspect: TF models and IR folders, the Graphviz picture, the TensorBoard graph."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from conftest import assert_clean_error, codegen

SVG = "{http://www.w3.org/2000/svg}"


def inspect_json(*args) -> dict:
    result = codegen("inspect", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def svg_boxes(path) -> dict[str, str]:
    """Graphviz node id -> the text of its label (lines joined by '|')."""
    root = ET.parse(path).getroot()
    boxes = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            title = group.find(f"{SVG}title").text
            boxes[title] = "|".join(t.text or "" for t in group.iter(f"{SVG}text"))
    return boxes


def svg_edges(path) -> int:
    return sum(1 for g in ET.parse(path).getroot().iter(f"{SVG}g") if g.get("class") == "edge")


def test_ir_folder_report_matches_the_tf_model(tiny_checkpoint, tiny_build):
    tf_report = inspect_json(f"{tiny_checkpoint}.meta")
    ir_report = inspect_json(tiny_build / "ir")
    assert ir_report["inputs"] == [{"name": "input", "dtype": "float32",
                                    "shape": [None, 33, 33, 3]}]
    assert ir_report["outputs"][0] == {"name": "output", "op": "squeeze", "shape": [None, 5]}
    assert tf_report["outputs"][0] == {"name": "output", "op": "Squeeze", "shape": [None, 5]}
    assert ir_report["op_counts"]["conv2d"] == tf_report["op_counts"]["Conv2D"] == 19
    assert ir_report["op_counts"]["batch_norm"] == tf_report["op_counts"]["FusedBatchNormV3"]
    assert ir_report["variables"] > 0 and ir_report["unsupported"] == {}
    # graph.json itself works too, and a text report is printed without --json
    text = codegen("inspect", tiny_build / "ir" / "graph.json")
    assert text.returncode == 0 and "output (squeeze): [None, 5]" in text.stdout


def test_svg_at_block_level(tiny_checkpoint, tmp_path):
    picture = tmp_path / "tiny.svg"
    result = codegen("inspect", f"{tiny_checkpoint}.meta", "--svg", picture, "--depth", "2")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr and "11 boxes" in result.stderr
    boxes = svg_boxes(picture)
    labels = sorted(boxes.values())
    assert "input|Placeholder · N×33×33×3" in labels
    assert "output|Squeeze · N×5" in labels
    assert "block1 · 2 × unit_*|26 ops: 7 Conv2D, 6 FusedBatchNormV3|N×5×5×16" in labels
    assert "block2 · 3 × unit_*|35 ops: 10 Conv2D, 9 FusedBatchNormV3|N×5×5×32" in labels
    assert "pool5|Mean · N×1×1×32" in labels
    assert len(boxes) == 11
    # the chain input -> Pad -> conv1 -> pool1 -> block1 -> block2 -> postnorm -> pool5 ->
    # logits, and logits -> predictions, logits -> output
    assert svg_edges(picture) == 10


def test_svg_depth_is_automatic_and_ir_folders_draw_too(tiny_build, tmp_path):
    picture = tmp_path / "ir.svg"
    result = codegen("inspect", tiny_build / "ir", "--svg", picture)
    assert result.returncode == 0, result.stderr
    labels = list(svg_boxes(picture).values())
    # the deepest depth with at most 40 boxes: each unit's conv1/conv2/conv3 is a box
    assert "40 boxes" in result.stderr and len(labels) == 40
    assert sum(label.startswith("conv3|2 ops: 1 conv2d, 1 bias_add") for label in labels) == 5
    assert "input|Input · N×33×33×3" in labels and "output|squeeze · N×5" in labels


def test_dot_text_and_png(tiny_build, tmp_path):
    result = codegen("inspect", tiny_build / "ir", "--svg", tmp_path / "g.dot", "--depth", "1",
                     "-q")
    assert result.returncode == 0, result.stderr
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph {") and "resnet_v2_tiny" in dot and result.stderr == ""
    if shutil.which("dot"):
        result = codegen("inspect", tiny_build / "ir", "--svg", tmp_path / "g.png", "-q")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, needle", [
    (["--svg", "picture.jpeg"], "unknown picture format"),
    (["--svg", "picture.svg", "--depth", "0"], "--depth must be 1 or more"),
])
def test_bad_picture_options(tiny_checkpoint, tmp_path, args, needle):
    result = codegen("inspect", f"{tiny_checkpoint}.meta", *args, cwd=tmp_path)
    assert_clean_error(result, 2, needle)
    assert not list(tmp_path.iterdir())


def test_tensorboard_event_file_holds_the_graph(tiny_checkpoint, tmp_path):
    from codegen.frontends.tensorflow.compat import import_tf

    result = codegen("inspect", f"{tiny_checkpoint}.meta", "--tensorboard", tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    events = list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 1
    tf = import_tf()
    graphs = []
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        if event.graph_def:
            graph_def = tf.compat.v1.GraphDef()
            graph_def.ParseFromString(event.graph_def)
            graphs.append({node.name: node.op for node in graph_def.node})
    assert len(graphs) == 1
    assert graphs[0]["output"] == "Squeeze" and graphs[0]["input"] == "Placeholder"
    assert graphs[0]["resnet_v2_tiny/block2/unit_3/bottleneck_v2/conv3/Conv2D"] == "Conv2D"


def test_tensorboard_needs_a_tf_model(tiny_build, tmp_path):
    result = codegen("inspect", tiny_build / "ir", "--tensorboard", tmp_path / "logs")
    assert_clean_error(result, 2, "TensorFlow model")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_names_are_drawn_literally(tmp_path):
    from codegen.tools.picture import Op, write_picture

    ops = [Op('in"put', "Input", [], [None, 3]),
           Op('a\\b/x"y/c', "relu", ['in"put'], [None, 3]),
           Op('a\\b/x"y/d', "relu", ['a\\b/x"y/c'], [None, 3]),
           Op("a\\b/z", "relu", ['a\\b/x"y/d'], [None, 3])]
    assert write_picture(ops, tmp_path / "g.svg", depth=2) == 3
    texts = [t.text for t in ET.parse(tmp_path / "g.svg").getroot().iter(f"{SVG}text")]
    assert texts.index('in"put') + 1 == texts.index("Input · N×3")
    assert "a\\b" in texts and 'x"y' in texts and "2 ops: 2 relu" in texts
