"""Which TF tensor holds the source of each PyTorch state_dict entry, and how it was re-laid.

`OUT_DIR/weights/index.json` maps every state_dict key to an entry. A current entry names
the source variable (`source`: a checkpoint key, or a Keras `variable.path`), the tensor of
the graph `codegen verify` loads that holds its value (`tensor`: `fc/weights:0` in a
checkpoint graph, a `Const` output in a frozen one) and the steps that turn that value into
the PyTorch tensor (`transforms`: `["transpose", perm]` / `["reshape", shape]`; any other
kind means a computed weight, not a re-layout). Older entries only have `tf_name` and a
`fingerprint` "<sha256>:<repr of the transforms>": we read those too and say so.

A layout change of a value is the same layout change of its gradient, so a TF gradient
goes through `layout` before it is compared with PyTorch's.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.errors import InputError

LAYOUT_KINDS = ("transpose", "reshape")
NO_SOURCE = ("no TF tensor: its tf_name is not in the graph and no Const in its scope has "
             "its value (a weight codegen made up?)")


@dataclass
class ParamSource:
    key: str  # the state_dict key
    tensor: str  # the TF tensor holding the source value ("" when unknown)
    source: str  # the source variable's own name ("" when index.json does not say)
    transforms: list | None  # layout steps; None when they are not a pure re-layout
    sha256: str  # of the source array as codegen saved it ("" when unknown)
    legacy: bool  # read from tf_name + fingerprint (index.json of an older codegen)


def read_index(out_dir: Path) -> list[ParamSource]:
    """The entries of OUT_DIR/weights/index.json, in its (graph) order."""
    path = Path(out_dir) / "weights" / "index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path}: missing or damaged; run 'codegen build' first") from None
    return [_entry(key, info) for key, info in index.items()]


def _entry(key: str, info: dict) -> ParamSource:
    sha, _, recorded = str(info.get("fingerprint", "")).partition(":")
    legacy = "tensor" not in info or "transforms" not in info
    if legacy:
        tensor = f"{info['tf_name']}:0" if info.get("tf_name") else ""
        transforms = _parse_transforms(recorded)
    else:
        tensor, transforms = info["tensor"] or "", info["transforms"]
    return ParamSource(key, tensor, info.get("source", ""), _pure_layout(transforms),
                       sha if len(sha) == 64 else "", legacy)


def _parse_transforms(text: str):
    try:
        return ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError):
        return None


def _pure_layout(transforms) -> list | None:
    """[(kind, tuple)] when every step is a transpose or reshape, else None."""
    if not isinstance(transforms, (list, tuple)):
        return None
    steps = []
    for step in transforms:
        if not isinstance(step, (list, tuple)) or len(step) != 2 or step[0] not in LAYOUT_KINDS:
            return None
        steps.append((step[0], tuple(int(n) for n in step[1])))
    return steps


def layout(array: np.ndarray, transforms: list) -> np.ndarray:
    """`array` re-laid as the PyTorch tensor (a value or, identically, its gradient)."""
    for kind, argument in transforms:
        array = array.transpose(argument) if kind == "transpose" else array.reshape(argument)
    return np.ascontiguousarray(array)


def untied(entries: list[ParamSource], parameters: set[str]) -> dict[str, list[str]]:
    """TF tensors that are the source of several PyTorch parameters. One TF variable read
    at several places gets the sum of its gradients; N PyTorch copies would each get one
    part and drift apart in training."""
    by_tensor = defaultdict(list)
    for entry in entries:
        if entry.key in parameters and entry.tensor:
            by_tensor[entry.tensor].append(entry.key)
    return {tensor: keys for tensor, keys in by_tensor.items() if len(keys) > 1}


def array_sha256(array: np.ndarray) -> str:
    """The sha256 codegen records for a weight: of the .npy file (format 1.0) holding it."""
    import io

    array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    digest = hashlib.sha256(header.getvalue())
    digest.update(array)
    return digest.hexdigest()


def keras_variable_keys(entries: list[ParamSource], variables: list) -> tuple[dict, str]:
    """{variable.path: state_dict key} for the Keras model's variables, and how it was found.

    From index.json's `source` when it has one; an older index.json only records the sha256
    of each source array, so a variable is matched to the one key whose sha256 its value
    has, and only when no other variable or key shares that value (zero biases would)."""
    if any(entry.source for entry in entries):
        paths = {variable.path for variable in variables}
        return ({entry.source: entry.key for entry in entries if entry.source in paths},
                "index.json 'source'")
    keys = defaultdict(list)
    for entry in entries:
        if entry.sha256 and entry.transforms is not None:
            keys[entry.sha256].append(entry.key)
    found = defaultdict(list)
    for variable in variables:
        found[array_sha256(np.asarray(variable.numpy()))].append(variable.path)
    mapping = {paths[0]: keys[sha][0] for sha, paths in found.items()
               if len(paths) == 1 and len(keys.get(sha, [])) == 1}
    return mapping, "content (sha256 of each value; index.json has no 'source' field)"


def select_parameters(entries: list[ParamSource], model, graph) -> tuple[list, list, list]:
    """The entries of `model`'s parameters that have a TF tensor in `graph`, (key, why) for
    every other state_dict entry, and notes on how the tensors were found."""
    parameters, aliases = dict(model.named_parameters()), _aliases(model)
    compared, skipped, notes, by_value = [], [], [], 0
    consts = None
    for entry in entries:
        if entry.key in aliases:
            skipped.append((entry.key, f"the same parameter as {aliases[entry.key]} (tied)"))
            continue
        if entry.key not in parameters:
            skipped.append((entry.key, "buffer (not trained by gradients)"))
            continue
        if entry.transforms is None:
            skipped.append((entry.key, "computed from its source, not a re-layout"))
            continue
        if not _has_tensor(graph, entry.tensor) and entry.legacy and entry.sha256:
            consts = consts or ConstIndex(graph)
            if not consts.resolve(entry, tuple(parameters[entry.key].shape)):
                skipped.append((entry.key, NO_SOURCE))
                continue
            by_value += 1
        if not _has_tensor(graph, entry.tensor):
            skipped.append((entry.key, "index.json's tensor is not in the TF graph"))
            continue
        compared.append(entry)
    if any(entry.legacy for entry in entries):
        notes.append("index.json of an older codegen: TF tensors from 'tf_name', layouts from "
                     "'fingerprint'" + (f"; {by_value} found as the Const with the same "
                                        "value read in the same scope" if by_value else ""))
    return compared, skipped, notes


def _aliases(model) -> dict[str, str]:
    """state_dict keys that are another key's parameter (tied in PyTorch): {alias: key}."""
    first = {id(param): name for name, param in model.named_parameters()}
    return {key: first[id(value)] for key, value in model.state_dict(keep_vars=True).items()
            if id(value) in first and first[id(value)] != key}


def _has_tensor(graph, name: str) -> bool:
    if not name:
        return False
    try:
        graph.get_tensor_by_name(name)
    except (KeyError, ValueError):
        return False
    return True


class ConstIndex:
    """The float Consts of a frozen graph by the sha256 of their value, for an index.json
    of an older codegen whose `tf_name` is not a node (a frozen Keras BatchNorm's `scale`).
    A Const is found under the names of the ops reading it (itself and the Identity chains
    on it: a SavedModel reads `unknown_3` through `.../bn1/Cast_2/ReadVariableOp`)."""

    def __init__(self, graph) -> None:
        self.readers: dict[str, list[str]] = defaultdict(list)  # Const op name -> readers
        self.consts: dict[str, object] = {}
        for op in graph.get_operations():
            root = op
            while root.type == "Identity" and root.inputs:
                root = root.inputs[0].op
            if root.type == "Const" and root.outputs[0].dtype.is_floating:
                self.consts[root.name] = root
                self.readers[root.name].append(op.name)
        self._shas: dict[tuple, str] = {}

    def resolve(self, entry: ParamSource, shape: tuple[int, ...]) -> bool:
        """Point `entry` at the one Const read in the scope of its tf_name whose value codegen
        saved; a value saved reshaped (a depthwise kernel) gets that reshape as a first
        transform. False when there is none, or more than one."""
        scope = entry.tensor.rpartition("/")[0] + "/"
        saved = _saved_shape(shape, entry.transforms)
        found = set()
        for name, readers in self.readers.items():
            if not any(reader.startswith(scope) for reader in readers):
                continue
            if self._sha(name, None) == entry.sha256:
                found.add((name, None))
            elif saved is not None and self._sha(name, saved) == entry.sha256:
                found.add((name, saved))
        if len(found) != 1:
            return False
        name, reshape = found.pop()
        entry.tensor = f"{name}:0"
        if reshape is not None:
            entry.transforms = [("reshape", reshape), *entry.transforms]
        return True

    def _sha(self, name: str, shape: tuple | None) -> str:
        if (name, shape) not in self._shas:
            from tensorflow.python.framework import tensor_util

            value = tensor_util.MakeNdarray(self.consts[name].get_attr("value"))
            if shape is not None and value.size != int(np.prod(shape)):
                self._shas[name, shape] = ""
            else:
                self._shas[name, shape] = array_sha256(value if shape is None
                                                       else value.reshape(shape))
        return self._shas[name, shape]


def _saved_shape(shape: tuple[int, ...], transforms: list) -> tuple[int, ...] | None:
    """The shape codegen saved a weight in, undoing the transposes that gave `shape`
    (None when a reshape is among them: its input shape is not recorded)."""
    for kind, argument in reversed(transforms):
        if kind != "transpose":
            return None
        before = [0] * len(shape)
        for position, axis in enumerate(argument):
            before[axis] = shape[position]
        shape = tuple(before)
    return tuple(shape)
