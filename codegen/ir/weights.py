"""The weight store: one `.npy` file per source tensor, never pickled.

A `WeightEntry` describes how a node reads one file of an IR folder: the file holds the
source variable as TF stores it, and the entry's transforms (reshape, transpose, or take:
entries of one axis in a given order, for an RNN's gates; applied in order when the backend
streams the tensor out) give the layout the node needs. One
variable read at several places is one file; readers that need the same layout share one
entry, readers that need another layout get an entry of their own over the same file.
Entries are values: a pass never changes one in place, it asks for the transformed entry
(`transformed`), so a weight that two nodes read cannot be transposed twice.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from codegen.dtypes import STORED_AS, stored_dtype
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
    tf_name: str = ""  # the tensor's name in the TF graph (checkpoint key, Const node)
    source: str = ""  # the variable's own name where it differs (Keras `variable.path`)
    # (kind, argument) pairs applied in order when the tensor is read: the frontend's are
    # written to graph.json, the passes' are added again on every build.
    transforms: tuple[tuple[str, tuple[int, ...]], ...] = ()
    trainable: bool = False  # a trainable variable of the source (IR files before it: False)

    @property
    def out_shape(self) -> list[int]:
        """The shape after the transforms (what the backend sees)."""
        return _shape_after(self.shape, self.transforms)

    def transform_problem(self) -> str:
        """Why the transforms cannot apply to the file's shape ('' when they can)."""
        shape = list(self.shape)
        for kind, argument in self.transforms:
            if kind == "transpose" and sorted(argument) != list(range(len(shape))):
                return f"transpose {list(argument)} does not fit shape {shape}"
            if kind == "reshape" and (list(argument).count(-1) > 1 or min(argument, default=0) < -1
                                      or (-1 not in argument
                                          and math.prod(argument) != math.prod(shape))):
                return f"reshape {list(argument)} does not fit shape {shape}"
            if kind == "take" and (len(argument) < 2 or not 0 <= argument[0] < len(shape)
                                   or not all(0 <= i < shape[argument[0]] for i in argument[1:])):
                return f"take {list(argument)} does not fit shape {shape}"
            shape = _shape_after(shape, [(kind, argument)])
        return ""

    @property
    def source_name(self) -> str:
        """The name a person knows the variable by (Keras path, else the TF name)."""
        return self.source or self.tf_name

    def transformed(self, *steps: tuple[str, tuple[int, ...]]) -> WeightEntry:
        """A new entry over the same file with `steps` appended (this one is unchanged),
        in their shortest form: a transpose of a transpose is one, a reshape to the shape
        it has is none, so one layout has one spelling (and one IR weight name)."""
        canonical: list[tuple[str, tuple[int, ...]]] = []
        for kind, argument in self.transforms + tuple(steps):
            argument = tuple(argument)
            if kind == "transpose" and canonical and canonical[-1][0] == "transpose":
                previous = canonical.pop()[1]  # two transposes are one
                argument = tuple(previous[axis] for axis in argument)
            elif kind == "reshape":
                if canonical and canonical[-1][0] == "reshape":
                    canonical.pop()  # only the last reshape counts
                argument = tuple(_reshaped(_shape_after(self.shape, canonical), argument))
            before = _shape_after(self.shape, canonical)
            if kind == "take":
                keep = list(argument[1:]) != list(range(before[argument[0]]))
            else:
                keep = (argument != tuple(range(len(argument))) if kind == "transpose"
                        else list(argument) != before)
            if keep:  # else a no-op: left out
                canonical.append((kind, argument))
        return replace(self, transforms=tuple(canonical))

    def to_json(self) -> dict[str, Any]:
        data = {"file": self.file, "shape": self.shape, "dtype": self.dtype, "sha256": self.sha256}
        if self.tf_name:
            data["tf_name"] = self.tf_name
        if self.source:
            data["source"] = self.source
        if self.transforms:
            data["transforms"] = [[kind, list(argument)] for kind, argument in self.transforms]
        if self.trainable:
            data["trainable"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeightEntry:
        return cls(
            file=data["file"],
            shape=list(data["shape"]),
            dtype=data["dtype"],
            sha256=data["sha256"],
            tf_name=data.get("tf_name", ""),
            source=data.get("source", ""),
            transforms=tuple((kind, tuple(argument))
                             for kind, argument in data.get("transforms", [])),
            trainable=data.get("trainable", False),
        )


def _reshaped(shape: list[int], target) -> list[int]:
    """`target` with its -1 resolved against `shape`."""
    target = list(target)
    if -1 in target:
        known = math.prod(size for size in target if size != -1)
        target[target.index(-1)] = math.prod(shape) // known if known else 0
    return target


def _shape_after(shape: list[int], steps) -> list[int]:
    """`shape` after the transforms `steps`."""
    shape = list(shape)
    for kind, argument in steps:
        if kind == "transpose":
            shape = [shape[axis] for axis in argument]
        elif kind == "take":  # (axis, *indices): those entries of one axis, in that order
            shape[argument[0]] = len(argument) - 1
        else:
            shape = list(argument)
    return shape


def transform_name(name: str, steps) -> str:
    """The IR name of weight `name` read through `steps`: 'fc/w@transpose(1,0)'.
    Equal names mean equal tensors, which is how readers of one layout are found."""
    text = "".join(f"@{kind}({','.join(map(str, argument))})" for kind, argument in steps)
    return name + text


def save_array(ir_dir: Path, name: str, array: np.ndarray, *, file_name: str,
               tf_name: str = "", source: str = "", trainable: bool = False) -> WeightEntry:
    """Write one tensor as `ir_dir/weights/<file_name>` and describe it. Safe to call from
    several threads, each with its own `file_name` (`unique_file_names` gives them)."""
    relative = f"weights/{file_name}"
    path = Path(ir_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.require(array, requirements="C")  # (ascontiguousarray makes a 0-d array 1-d)
    if array.dtype.hasobject:
        raise ValueError(f"{name}: object arrays are not weights")
    dtype = str(array.dtype)
    if dtype in STORED_AS:
        array = array.view(STORED_AS[dtype])
    header = io.BytesIO()  # the header np.save writes (format 1.0 fits any weight's shape)
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    digest = hashlib.sha256(header.getvalue())
    digest.update(array)  # the array's own memory: hashed and written without a copy
    with open(path, "wb") as handle:
        handle.write(header.getvalue())
        handle.write(array)
    return WeightEntry(
        file=relative,
        shape=list(array.shape),
        dtype=dtype,
        sha256=digest.hexdigest(),
        tf_name=tf_name,
        source=source if source != tf_name else "",
        trainable=trainable,
    )


def unique_file_names(names: list[str]) -> dict[str, str]:
    """A distinct safe file name for each weight name: two names with one safe form get
    `_2`, `_3`, ... in the order given."""
    taken: set[str] = set()
    files = {}
    for name in names:
        file_name = weight_file_name(name)
        stem, counter = file_name[: -len(".npy")], 1
        while file_name in taken:
            counter += 1
            file_name = f"{stem}_{counter}.npy"
        taken.add(file_name)
        files[name] = file_name
    return files


def load_array(ir_dir: Path, entry: WeightEntry, *, check_hash: bool = False) -> np.ndarray:
    """Read a weight (one read of the file), check it against its entry (with `check_hash`,
    its sha256 too), and apply its transforms."""
    path = Path(ir_dir) / entry.file
    if not path.is_file():
        raise InvalidIRError(f"{path}: weight file is missing; re-run 'codegen to-ir'")
    data = path.read_bytes()
    if check_hash and hashlib.sha256(data).hexdigest() != entry.sha256:
        raise InvalidIRError(f"{path}: sha256 does not match graph.json; re-run 'codegen to-ir'")
    return apply_transforms(_checked(path, entry, lambda: _parse_npy(data)), entry.transforms)


def _checked(path: Path, entry: WeightEntry, parse) -> np.ndarray:
    """`parse()`, with a damaged file or a shape/dtype other than the entry's as InvalidIRError."""
    try:
        array = parse()
    except Exception as exc:  # noqa: BLE001 - a damaged file raises many kinds
        raise InvalidIRError(f"{path}: not a plain .npy array ({type(exc).__name__}: "
                             f"{str(exc)[:100]}); re-run 'codegen to-ir'") from None
    if list(array.shape) != entry.shape or str(array.dtype) != stored_dtype(entry.dtype):
        raise InvalidIRError(
            f"{path}: holds {array.dtype}{list(array.shape)}, graph.json says "
            f"{entry.dtype}{entry.shape}; re-run 'codegen to-ir'"
        )
    return array


_HEADER_MAX = 65536 + 16  # the longest .npy header (format 1.0) and its preamble
# numpy reads a header with ast.literal_eval, and CPython 3.11 builds ASTs with one shared
# recursion counter: two threads at once can fail with "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905; seen here in a full zoo run).
_HEADER_LOCK = threading.Lock()


def read_npy_header(stream) -> tuple[tuple[int, int], tuple[int, ...], bool, np.dtype]:
    """(version, shape, fortran_order, dtype) of the .npy file at `stream`, which is left at
    the first byte of the data. The one header reader of the project: safe on threads."""
    with _HEADER_LOCK:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(stream)
    return version, shape, fortran_order, dtype


def apply_transforms(array: np.ndarray, transforms) -> np.ndarray:
    """`array` with ("transpose", perm) / ("reshape", shape) steps applied, in order (views),
    and ("take", (axis, *indices)) steps (a copy: an RNN's gates put in another order)."""
    for kind, argument in transforms:
        if kind == "take":
            array = np.take(array, list(argument[1:]), axis=argument[0])
        else:
            array = array.transpose(argument) if kind == "transpose" else array.reshape(argument)
    return array


def _parse_npy(data) -> np.ndarray:
    """The array of a .npy file's bytes, without copying them. Object arrays (pickles) are
    refused, like np.load(allow_pickle=False)."""
    stream = io.BytesIO(data[:_HEADER_MAX])
    _, shape, fortran_order, dtype = read_npy_header(stream)
    if dtype.hasobject:
        raise ValueError("object arrays are pickles and are not loaded")
    count = math.prod(shape)
    array = np.frombuffer(data, dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


def copy_weight(ir_dir: Path, entry: WeightEntry, target: Path) -> bool:
    """Write the weight of `entry`, transforms applied, as the .npy file `target`; False
    (and nothing written) when its file does not match its sha256.

    The file is read once into a buffer of this thread and written from it, a transposed
    tensor through a second buffer of at most COPY_CHUNK bytes: both are reused from
    tensor to tensor, so a build does not allocate (and page-fault) fresh memory for every
    tensor, and memory holds one tensor per thread.
    """
    path = Path(ir_dir) / entry.file
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = _thread_buffer("read", size)
        if handle.readinto(data) != size:
            raise InvalidIRError(f"{path}: changed while being read; run the command again")
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        return False
    array = apply_transforms(_checked(path, entry, lambda: _parse_npy(data)), entry.transforms)
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
              "shape": array.shape}  # what np.save writes for a C-order array
    with open(target, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        if array.flags.c_contiguous:
            handle.write(array)
            return True
        rows = max(1, COPY_CHUNK // max(1, array[0].nbytes))  # C order, a block of rows at a time
        for start in range(0, len(array), rows):
            part = array[start:start + rows]
            block = np.frombuffer(_thread_buffer("out", part.nbytes), array.dtype, part.size)
            np.copyto(block.reshape(part.shape), part)
            handle.write(block)
    return True


COPY_CHUNK = 16 << 20


_buffers = threading.local()


def _thread_buffer(name: str, size: int) -> memoryview:
    """A writable buffer of `size` bytes, kept per thread and grown to the largest tensor."""
    buffer = getattr(_buffers, name, None)
    if buffer is None or len(buffer) < size:
        buffer = bytearray(max(size, 1))
        setattr(_buffers, name, buffer)
    return memoryview(buffer)[:size]
