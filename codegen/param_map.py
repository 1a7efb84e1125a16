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
