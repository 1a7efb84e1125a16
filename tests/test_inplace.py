"""Activations are written in place only where that cannot change a result.

`F.relu(x, inplace=True)` saves an allocation and a pass over memory, but overwrites x:
the generator uses it only when x is a new tensor (a conv, norm, linear or arithmetic
result) that nothing else reads. This graph has every case that must stay out of place:
a value read twice, a view (reshape) of another value, and the model's own input.
"""

from __future__ import annotations

import numpy as np
import torch
from conftest import codegen, load_generated, relative_error

from codegen.frontends.tensorflow.compat import import_tf


def frozen_graph(path) -> None:
    tf = import_tf()
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        kernel = tf.constant(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
        conv = tf.nn.conv2d(x, kernel, 1, "SAME")
        only_reader = tf.nn.relu(conv)  # conv is also read below: not in place
        twice = only_reader + conv * 2.0
        fresh = tf.nn.relu6(twice)  # `twice` has one reader: in place
        view = tf.reshape(conv, [-1, 8 * 8 * 4])
        of_view = tf.nn.relu(view)  # a view of conv, which is read above: not in place
        of_input = tf.nn.relu(x)  # the caller's tensor: not in place
        tf.identity(tf.reduce_mean(fresh, [1, 2]), name="a")
        tf.identity(of_view, name="b")
        tf.identity(of_input, name="c")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def run_frozen(path, outputs: list[str], images: np.ndarray) -> list[np.ndarray]:
    """TF's values of the named nodes of a frozen graph for `input`."""
    tf = import_tf()
    graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run([f"{name}:0" for name in outputs], {"input:0": images})


def test_activations_in_place_only_when_safe(tmp_path):
    frozen_graph(tmp_path / "model.pb")
    outputs = ("--dst-node", "a", "--dst-node", "b", "--dst-node", "c")
    assert codegen("to-ir", tmp_path / "model.pb", *outputs, "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    assert "class Model(nn.Module):" in source  # a graph without scopes: the class is Model
    assert source.count("inplace=True") == 1, source
    assert "F.relu6(" in source and "F.relu6(" in next(
        line for line in source.splitlines() if "inplace=True" in line)

    images = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
    expected = run_frozen(tmp_path / "model.pb", ["a", "b", "c"], images)

    model = load_generated(tmp_path / "model").load_model()
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    before = x.clone()
    with torch.no_grad():
        a, b, c = model(x)  # in the order of the --dst-node options
    assert torch.equal(x, before)  # the input was not overwritten
    assert relative_error(a.numpy(), expected[0]) < 1e-5
    # b and c keep their layouts: compare through the layout the generated model documents
    assert relative_error(np.sort(b.numpy().ravel()), np.sort(expected[1].ravel())) < 1e-5
    assert relative_error(c.numpy().transpose(0, 2, 3, 1), expected[2]) < 1e-5


def residual_graph(path) -> None:
    """Sums: one that may land in a fresh operand, and two that must not."""
    tf = import_tf()
    rng = np.random.default_rng(2)

    def conv(x, channels_in, channels_out, size=3):
        kernel = rng.standard_normal((size, size, channels_in, channels_out)).astype(np.float32)
        return tf.nn.conv2d(x, tf.constant(kernel * 0.3), 1, "SAME")

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        stem = tf.nn.relu(conv(x, 3, 4))
        residual = stem + conv(stem, 4, 4)  # the branch's conv is fresh: `conv += stem`
        shared = conv(residual, 4, 4)  # read twice: never overwritten
        twice = shared + residual  # residual is read twice too: a new tensor
        pooled = tf.reduce_mean(x, [1, 2], keepdims=True)
        small = conv(pooled, 3, 4, size=1)  # fresh, but [N, 1, 1, 4]: broadcast, not in place
        tf.identity(twice, name="a")
        tf.identity(shared + small, name="b")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def test_sums_land_in_a_fresh_operand_only_when_safe(tmp_path):
    residual_graph(tmp_path / "model.pb")
    outputs = ("--dst-node", "a", "--dst-node", "b")
    assert codegen("to-ir", tmp_path / "model.pb", *outputs, "-o", tmp_path / "ir").returncode == 0
    assert codegen("build", tmp_path / "ir", "-o", tmp_path / "model").returncode == 0
    source = (tmp_path / "model" / "model.py").read_text()
    sums = [line.strip() for line in source.splitlines() if " += " in line]
    assert len(sums) == 1 and sums[0].endswith("+= relu"), source  # the stem's relu
    assert source.count(" + ") == 2, source  # `shared + residual`, `shared + small`

    images = np.random.default_rng(3).standard_normal((2, 8, 8, 3)).astype(np.float32)
    expected = run_frozen(tmp_path / "model.pb", ["a", "b"], images)
    model = load_generated(tmp_path / "model").load_model()
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        a, b = model(x)
    assert relative_error(a.numpy().transpose(0, 2, 3, 1), expected[0]) < 1e-5
    assert relative_error(b.numpy().transpose(0, 2, 3, 1), expected[1]) < 1e-5
    # autograd accepts the in-place sum: an add's backward reads neither operand
    x.requires_grad_(True)
    sum(out.square().sum() for out in model.train()(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_a_binary_template_without_the_in_place_form_still_adds(tmp_path):
    """A user's binary.py.jinja from before `+=` existed: the sums are written `a + b` again."""
    residual_graph(tmp_path / "model.pb")
    outputs = ("--dst-node", "a", "--dst-node", "b")
    assert codegen("to-ir", tmp_path / "model.pb", *outputs, "-o", tmp_path / "ir").returncode == 0
    (tmp_path / "templates" / "ops").mkdir(parents=True)
    (tmp_path / "templates" / "ops" / "binary.py.jinja").write_text(
        '{% macro forward(x, a) -%}\n{{ x[0] }} + {{ x[1] }}\n{%- endmacro %}\n')
    result = codegen("build", tmp_path / "ir", "-o", tmp_path / "model",
                     "--templates", tmp_path / "templates")
    assert result.returncode == 0, result.stderr
    source = (tmp_path / "model" / "model.py").read_text()
    assert " += " not in source and source.count(" + ") == 3, source
    model = load_generated(tmp_path / "model").load_model()
    images = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        a, _ = model(torch.from_numpy(images))
        stem = torch.relu(model.conv(torch.from_numpy(images)))
        expected = stem + model.conv_2(stem)
        expected = model.conv_3(expected) + expected
    torch.testing.assert_close(a, expected)
