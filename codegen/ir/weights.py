"""The weight store: one `.npy` file per tensor, never pickled.

A `WeightEntry` describes one file of an IR folder. Passes change a weight's layout
without touching its file: they append a transform (reshape or transpose) that is applied
when the backend streams the tensor out, so nothing is read or written twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codegen.errors import InvalidIRError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def weight_file_name(name: str) -> str:
    """A safe file name for a weight name: 'a/b:0' -> 'a.b_0.npy'."""
    stem = _UNSAFE.sub("_", name.replace("/", ".")).strip("._") or "weight"
    return f"{stem}.npy"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class WeightEntry:
    file: str
    shape: list[int]  # the shape of the array in the file
    dtype: str
    sha256: str
    tf_name: str = ""
    # (kind, argument) pairs applied in order when the tensor is read. Never serialised:
    # passes run again on every build.
    transforms: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def out_shape(self) -> list[int]:
        """The shape after the transforms (what the backend sees)."""
        shape = list(self.shape)
        for kind, argument in self.transforms:
            shape = [shape[axis] for axis in argument] if kind == "transpose" else list(argument)
        return shape

    def transpose(self, perm: tuple[int, ...]) -> None:
        self.transforms.append(("transpose", tuple(perm)))

    def reshape(self, shape: tuple[int, ...]) -> None:
        self.transforms.append(("reshape", tuple(shape)))

    def to_json(self) -> dict[str, Any]:
        data = {"file": self.file, "shape": self.shape, "dtype": self.dtype, "sha256": self.sha256}
        if self.tf_name:
            data["tf_name"] = self.tf_name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeightEntry:
        return cls(
            file=data["file"],
            shape=list(data["shape"]),
            dtype=data["dtype"],
            sha256=data["sha256"],
            tf_name=data.get("tf_name", ""),
        )


def save_array(ir_dir: Path, name: str, array: np.ndarray, *, tf_name: str = "") -> WeightEntry:
    """Write one tensor as `ir_dir/weights/<safe name>.npy` and describe it."""
    file_name = weight_file_name(name)
    stem, counter = file_name[: -len(".npy")], 1
    while (Path(ir_dir) / "weights" / file_name).exists():  # two names, one safe form
        counter += 1
        file_name = f"{stem}_{counter}.npy"
    relative = f"weights/{file_name}"
    path = Path(ir_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(array)
    with open(path, "wb") as handle:
        stream = _HashingWriter(handle)
        np.lib.format.write_array(stream, array, allow_pickle=False)
    return WeightEntry(
        file=relative,
        shape=list(array.shape),
        dtype=str(array.dtype),
        sha256=stream.digest.hexdigest(),
        tf_name=tf_name,
    )


class _HashingWriter:
    """A write-only file that hashes what goes through it (no second read of the file)."""

    def __init__(self, handle) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)


def load_array(ir_dir: Path, entry: WeightEntry, *, check_hash: bool = False) -> np.ndarray:
    """Read a weight (memory-mapped), check it against its entry, apply its transforms."""
    path = Path(ir_dir) / entry.file
    if not path.is_file():
        raise InvalidIRError(f"{path}: weight file is missing; re-run 'codegen to-ir'")
    if check_hash and sha256_file(path) != entry.sha256:
        raise InvalidIRError(f"{path}: sha256 does not match graph.json; re-run 'codegen to-ir'")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file raises many kinds
        raise InvalidIRError(f"{path}: not a plain .npy array ({type(exc).__name__}: "
                             f"{str(exc)[:100]}); re-run 'codegen to-ir'") from None
    if list(array.shape) != entry.shape or str(array.dtype) != entry.dtype:
        raise InvalidIRError(
            f"{path}: holds {array.dtype}{list(array.shape)}, graph.json says "
            f"{entry.dtype}{entry.shape}; re-run 'codegen to-ir'"
        )
    for kind, argument in entry.transforms:
        array = array.transpose(argument) if kind == "transpose" else array.reshape(argument)
    return array
