"""Write TF1 checkpoints (graph + variables) for a network-building function.

`write_checkpoint` builds the inference graph of a slim-style network with a
placeholder named ``input`` and an output named ``output``, fills its variables with
deterministic random values chosen by role (BatchNorm gamma U(0.8, 1.2), beta N(0, 0.1),
He-normal weights), scales the last affine layer of every residual branch by
1 / sqrt(number of branches) (found from the graph's wiring, `residual.py`), calibrates
the BatchNorm statistics on a fixed batch of random images so that eval-mode activations
stay near unit scale, scales the logits layer so the outputs are O(1), and saves a V2
checkpoint with its ``.meta`` graph. `restore_checkpoint` does the same with the
variables of an existing checkpoint.

Without the branch scaling, deep random ResNets are ill-conditioned: in ResNet V1 152 the
float32 round-off of the first layers grows ~500x on its way to the logits, so TF's own
float32 output is 4e-4 from float64 and no float32 conversion can be checked at 1e-4.
With it, TF float32 is 1.7e-6 from float64 there (see `scale_residual_branches`).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from codegen.errors import InputError, UsageError
from codegen.frontends.tensorflow.compat import import_tf
from codegen.zoo.residual import residual_branch_ends, variable_name

BuildFn = Callable[[Any, bool], Any]
"""build_fn(inputs, is_training) -> logits, rank 4 [N, 1, 1, C] or rank 2 [N, C]."""

CALIBRATION_BATCH = 8
_WEIGHT_NAMES = {"weights", "kernel", "depthwise_weights", "pointwise_weights"}
_LINEAR_OPS = {"Identity", "Squeeze", "Reshape", "BiasAdd", "Add", "AddV2", "Mean"}


def build_graph(build_fn: BuildFn, image_size: int, *, is_training: bool):
    """Build `build_fn` in a fresh graph; return (graph, input placeholder, output)."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(
            tf.float32, [None, image_size, image_size, 3], name="input"
        )
        try:
            with warnings.catch_warnings():  # tf_slim's calls of deprecated Keras APIs
                warnings.filterwarnings("ignore", message=".*is deprecated", category=UserWarning)
                logits = build_fn(inputs, is_training)
        except ValueError as exc:  # e.g. images too small for a VALID pooling
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(
                f"cannot build the network for {image_size}px images: {reason}"
            ) from exc
        if isinstance(logits, (tuple, list)):  # tolerate slim's (logits, end_points)
            logits = logits[0]
        output = _name_output(tf, logits)
    return graph, inputs, output


def _name_output(tf, logits):
    """Return the logits as a node named `output`, squeezing 1x1 spatial dims."""
    shape = logits.shape
    if shape.rank == 2:
        output = tf.identity(logits, name="output")
    elif shape.rank == 4 and shape[1] in (1, None) and shape[2] in (1, None):
        output = tf.squeeze(logits, [1, 2], name="output")
    else:
        raise UsageError(
            f"the network's logits have shape {shape}; expected [N, C] or [N, 1, 1, C]"
        )
    if output.op.name != "output":
        raise UsageError("the network already has a node named 'output'; rename it")
    return output


def graph_variables(graph) -> list:
    """The global variables of `graph`, in creation order."""
    return list(graph.get_collection("variables"))


def random_value(name: str, shape: tuple[int, ...], dtype: np.dtype, seed: int) -> np.ndarray:
    """A deterministic random value for the variable `name`, chosen by its role."""
    rng = _rng(seed, name)
    role = name.rsplit("/", 1)[-1]
    if not np.issubdtype(dtype, np.floating):
        return np.zeros(shape, dtype)
    if role == "moving_mean":
        value = np.zeros(shape)
    elif role == "moving_variance":
        value = np.ones(shape)
    elif role == "gamma":
        value = rng.uniform(0.8, 1.2, shape)
    elif role == "beta":
        value = rng.normal(0.0, 0.1, shape)
    elif len(shape) >= 2 or role in _WEIGHT_NAMES:
        std = np.float32(math.sqrt(2.0 / _fan_in(role, shape)))  # He-normal
        value = rng.standard_normal(shape, dtype=np.float32) * std
    else:  # biases and anything else small
        value = rng.normal(0.0, 0.01, shape)
    return value.astype(dtype)


def _rng(seed: int, label: str) -> np.random.Generator:
    """A random generator keyed on `seed` and a stable hash of `label`."""
    return np.random.default_rng([seed % 2**64, zlib.crc32(label.encode("utf-8"))])


def _fan_in(role: str, shape: tuple[int, ...]) -> int:
    """Inputs feeding one output unit: all dims but the last (kernel dims if depthwise)."""
    dims = shape[:-2] if role == "depthwise_weights" else shape[:-1]
    return max(1, math.prod(dims))


def random_values(variables: list, seed: int) -> dict[str, np.ndarray]:
    """Deterministic random values for all `variables`, keyed by variable name."""
    return {
        v.op.name: random_value(
            v.op.name, tuple(v.shape.as_list()), v.dtype.base_dtype.as_numpy_dtype, seed
        )
        for v in variables
    }


def load_values(session, variables: list, values: Mapping[str, np.ndarray]) -> None:
    """Assign `values` to `variables` by feeding their initializers (adds no nodes)."""
    feed = {v.initial_value: values[v.op.name] for v in variables}
    session.run([v.initializer for v in variables], feed_dict=feed)


def calibration_images(image_size: int, seed: int) -> np.ndarray:
    """A fixed batch of random images, uniform in [-1, 1], derived from `seed`."""
    rng = _rng(seed, "calibration images")
    shape = (CALIBRATION_BATCH, image_size, image_size, 3)
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def batchnorm_inputs(graph) -> dict[str, tuple[Any, str]]:
    """Map each BatchNorm's moving_mean name to (its input tensor, moving_variance name).

    Fused batch norms name their moving statistics among their inputs; the unfused
    slim layer is found by its `<scope>/moments/mean` op.
    """
    found: dict[str, tuple[Any, str]] = {}
    for op in graph.get_operations():
        if op.type.startswith("FusedBatchNorm") and not op.type.endswith("Grad"):
            mean, variance = variable_name(op.inputs[3]), variable_name(op.inputs[4])
            if mean and variance:
                found[mean] = (op.inputs[0], variance)
    for variable in graph_variables(graph):
        name = variable.op.name
        scope, _, role = name.rpartition("/")
        if role != "moving_mean" or name in found:
            continue
        try:
            moments = graph.get_operation_by_name(f"{scope}/moments/mean")
        except KeyError:
            continue
        found[name] = (moments.inputs[0], f"{scope}/moving_variance")
    return found


def batchnorm_statistics(
    build_fn: BuildFn,
    image_size: int,
    values: Mapping[str, np.ndarray],
    images: np.ndarray,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Batch mean and variance of every BatchNorm's input, in one training-mode pass.

    In training mode each BatchNorm normalises with the statistics of its own batch,
    so storing those as moving statistics makes the eval-mode network compute the
    same activations on `images`.
    """
    tf = import_tf()
    graph, inputs, _ = build_graph(build_fn, image_size, is_training=True)
    with graph.as_default():
        fetches = {}
        for mean_name, (tensor, variance_name) in batchnorm_inputs(graph).items():
            axes = list(range(tensor.shape.rank - 1))
            mean, variance = tf.nn.moments(tf.cast(tensor, tf.float64), axes)
            fetches[mean_name], fetches[variance_name] = mean, variance
        variables = graph_variables(graph)
        seeded = {v.op.name: values[v.op.name] for v in variables if v.op.name in values}
        missing = [v for v in variables if v.op.name not in values]
        seeded.update(random_values(missing, seed))
        with tf.compat.v1.Session(graph=graph) as session:
            load_values(session, variables, seeded)
            return session.run(fetches, feed_dict={inputs: images})


def final_layer_variables(output) -> list[str]:
    """Variables of the linear layer(s) producing `output`; [] if it is not linear."""
    names: list[str] = []
    stack, seen = [output.op], set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in ("Conv2D", "MatMul"):
            weights = variable_name(op.inputs[1])
            if weights is None:
                return []
            names.append(weights)
        elif op.type in _LINEAR_OPS:
            for tensor in op.inputs:
                variable = variable_name(tensor)
                if variable is not None:
                    names.append(variable)
                elif tensor.op.type != "Const":
                    stack.append(tensor.op)
        else:
            return []
    return names


def scale_residual_branches(values: dict[str, np.ndarray], ends: list[list[str]]) -> float:
    """Scale the last affine layer of every residual branch by 1 / sqrt(number of branches).

    `ends` lists, per residual addition, the variables of its branch's last affine layer
    (`residual.residual_branch_ends`). Random weights give every branch unit scale, so
    each block adds about one unit of variance to the residual sum, and a deep random
    ResNet with BatchNorm is chaotic: in ResNet V1 152 the float32 round-off of conv1
    (5e-7) reaches the logits ~500x larger. Scaled, all the branches together add about
    one unit, the growth stays bounded whatever the depth (1.7x there), as in networks
    trained from zero-initialised branch ends (Goyal et al. 2017) or with Fixup / SkipInit
    scaling. The branches still matter (without them ResNet V1 152's logits change by 70%
    of their range), and a wrong branch weight still shows far above 1e-4. Returns the
    scale.
    """
    if not ends:
        return 1.0
    scale = 1.0 / math.sqrt(len(ends))
    for names in ends:
        for name in names:
            values[name] = (values[name] * scale).astype(values[name].dtype)
    return scale


def _scale_logits(session, graph, inputs, output, values: dict, images: np.ndarray) -> None:
    """Scale the logits layer so that the logits on `images` have unit std."""
    logits = session.run(output, feed_dict={inputs: images})
    std = float(np.std(logits))
    names = final_layer_variables(output)
    if not names or not math.isfinite(std) or std == 0.0:
        return
    for name in names:
        values[name] = (values[name] / std).astype(values[name].dtype)
    variables = [v for v in graph_variables(graph) if v.op.name in names]
    load_values(session, variables, values)


def save(session, graph, out_prefix: Path) -> Path:
    """Save the variables (V2 format) and the meta graph under `out_prefix`."""
    tf = import_tf()
    with graph.as_default():
        saver = tf.compat.v1.train.Saver(
            var_list=graph_variables(graph),
            write_version=tf.compat.v1.train.SaverDef.V2,
        )
        saver.save(session, str(out_prefix), write_meta_graph=True, write_state=False)
    return out_prefix


def write_checkpoint(
    build_fn: BuildFn, out_prefix: Path, *, image_size: int, seed: int = 0, calibrate: bool = True
) -> Path:
    """Write a random-weights checkpoint of `build_fn`'s inference graph to `out_prefix`.

    The files are `<out_prefix>.meta`, `.index` and `.data-00000-of-00001`. With
    `calibrate`, residual branches are scaled down (`scale_residual_branches`), BatchNorm
    moving statistics are set to the batch statistics of a fixed random batch and the
    logits layer is scaled to unit output std.
    """
    tf = import_tf()
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    graph, inputs, output = build_graph(build_fn, image_size, is_training=False)
    variables = graph_variables(graph)
    values = random_values(variables, seed)
    if calibrate:
        scale_residual_branches(values, residual_branch_ends(inputs, output))
    images = calibration_images(image_size, seed)
    if calibrate and any(name.endswith("/moving_mean") for name in values):
        statistics = batchnorm_statistics(build_fn, image_size, values, images, seed)
        for name, value in statistics.items():
            if name in values:
                values[name] = value.astype(values[name].dtype)
    with tf.compat.v1.Session(graph=graph) as session:
        load_values(session, variables, values)
        if calibrate:
            _scale_logits(session, graph, inputs, output, values, images)
        return save(session, graph, out_prefix)


def restore_checkpoint(
    build_fn: BuildFn,
    checkpoint: Path,
    out_prefix: Path,
    *,
    image_size: int,
    label: str | None = None,
) -> Path:
    """Load the variables of an existing checkpoint into `build_fn`'s inference graph
    and save graph + variables to `out_prefix`. InputError (naming `label`, by default
    the checkpoint) if it cannot be read or its variables do not match the graph.
    """
    tf = import_tf()
    label = label or f"checkpoint {checkpoint}"
    graph, _, _ = build_graph(build_fn, image_size, is_training=False)
    variables = graph_variables(graph)
    try:
        reader = tf.train.load_checkpoint(str(checkpoint))
        _check_variables(label, variables, reader.get_variable_to_shape_map())
        values = {
            v.op.name: reader.get_tensor(v.op.name).astype(v.dtype.base_dtype.as_numpy_dtype)
            for v in variables
        }
    except (tf.errors.OpError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {label}: {reason}") from exc
    with tf.compat.v1.Session(graph=graph) as session:
        load_values(session, variables, values)
        return save(session, graph, Path(out_prefix))


def _check_variables(label: str, variables: list, shapes: Mapping[str, list]) -> None:
    """Raise InputError if the checkpoint lacks a variable or has it in another shape."""
    problems = []
    for variable in variables:
        name, want = variable.op.name, variable.shape.as_list()
        if name not in shapes:
            problems.append(f"{name} is missing")
        elif list(shapes[name]) != want:
            problems.append(f"{name} has shape {list(shapes[name])}, expected {want}")
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        raise InputError(f"{label} does not match the network: {shown}", details=problems)
