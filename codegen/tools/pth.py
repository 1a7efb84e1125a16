"""Write a state_dict `.pth` tensor by tensor, without importing torch.

The file is what `torch.save(OrderedDict(...))` writes (format version 3): a zip archive,
stored (not compressed), with `data.pkl` describing the tensors and one `data/<n>` record
of raw little-endian bytes per tensor. Records start on 64-byte boundaries, as torch's
own writer aligns them, so `torch.load(path, mmap=True)` works too. Every tensor is
copied from its `.npy` file in chunks: memory stays flat whatever the size of the model.

`data.pkl` is written opcode by opcode (pickle protocol 2) and uses only the globals
that `torch.load(..., weights_only=True)` allows: collections.OrderedDict,
torch._utils._rebuild_tensor_v2 and torch.<Type>Storage.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.dtypes import stored_dtype
from codegen.ir.weights import read_npy_header

ALIGNMENT = 64
CHUNK = 16 << 20
STORAGE_TYPES = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage",
    "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
    "bfloat16": "BFloat16Storage",  # its .npy file holds the bits as uint16
}


@dataclass
class NpyTensor:
    """A tensor as it lies in a `.npy` file: where its bytes start, dtype and shape."""

    path: Path
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    storage: str = ""  # the torch storage type; by default the one of `dtype`

    @classmethod
    def open(cls, path: Path, dtype_name: str = "") -> NpyTensor:
        """The tensor of the .npy file `path`; `dtype_name` names its real dtype where the
        file holds its bits (bfloat16 as uint16, as weights/index.json says)."""
        with open(path, "rb") as handle:
            version, shape, fortran, dtype = read_npy_header(handle)
            offset = handle.tell()
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version} is not supported")
        name = dtype_name or dtype.name
        if dtype_name and stored_dtype(dtype_name) != dtype.name:
            raise ValueError(f"holds {dtype.name}, weights/index.json says {dtype_name}")
        if fortran or dtype.hasobject or name not in STORAGE_TYPES:
            raise ValueError(f"unsupported array layout or dtype {dtype}")
        return cls(Path(path), offset, dtype.newbyteorder("<"), tuple(shape), STORAGE_TYPES[name])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def write_state_dict(target: Path, tensors: Iterable[tuple[str, NpyTensor]]) -> int:
    """Write `target` (a zip named like torch.save names it); return the tensor count."""
    items = list(tensors)
    root = Path(target).stem.replace(".", "_") or "archive"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        _add(archive, f"{root}/data.pkl", _pickle(items))
        _add(archive, f"{root}/.format_version", b"1")
        _add(archive, f"{root}/.storage_alignment", str(ALIGNMENT).encode())
        _add(archive, f"{root}/byteorder", b"little")
        buffer = memoryview(bytearray(min(CHUNK, max((t.nbytes for _, t in items), default=0))))
        for number, (_, tensor) in enumerate(items):
            _add_file(archive, f"{root}/data/{number}", tensor, buffer)
        _add(archive, f"{root}/version", b"3\n")
    return len(items)


def _aligned_info(archive: zipfile.ZipFile, name: str, size: int) -> zipfile.ZipInfo:
    """A ZipInfo whose data starts on an ALIGNMENT boundary (padding in the extra field)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.file_size = size
    zip64 = 20 if size * 1.05 > zipfile.ZIP64_LIMIT else 0  # zipfile's own zip64 extra field
    header = 30 + len(name.encode()) + zip64 + 4  # 4: our padding field's own header
    padding = -(archive.fp.tell() + header) % ALIGNMENT
    info.extra = struct.pack("<HH", 0x4246, padding) + b"Z" * padding  # 'FB', as torch does
    return info


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    with archive.open(_aligned_info(archive, name, len(data)), "w") as stream:
        stream.write(data)


def _add_file(archive: zipfile.ZipFile, name: str, tensor: NpyTensor, buffer: memoryview) -> None:
    """Copy the tensor's bytes into the archive through `buffer` (one buffer for all)."""
    with open(tensor.path, "rb") as source, \
            archive.open(_aligned_info(archive, name, tensor.nbytes), "w") as stream:
        source.seek(tensor.offset)
        remaining = tensor.nbytes
        while remaining:
            count = source.readinto(buffer[:min(CHUNK, remaining)])
            if not count:
                raise ValueError(f"{tensor.path}: truncated")
            stream.write(buffer[:count])
            remaining -= count


# -- data.pkl -------------------------------------------------------------------------
def _pickle(items: list[tuple[str, NpyTensor]]) -> bytes:
    out = [b"\x80\x02", _global("collections", "OrderedDict"), b")R("]
    for number, (key, tensor) in enumerate(items):
        numel = int(np.prod(tensor.shape, dtype=np.int64))
        strides = [int(np.prod(tensor.shape[i + 1:], dtype=np.int64)) for i in range(len(tensor.shape))]
        out += [
            _text(key),
            _global("torch._utils", "_rebuild_tensor_v2"),
            b"((", _text("storage"), _global("torch", tensor.storage or STORAGE_TYPES[tensor.dtype.name]),
            _text(str(number)), _text("cpu"), _int(numel), b"tQ",  # persistent id -> storage
            _int(0), _tuple(tensor.shape), _tuple(strides), b"\x89",  # offset, size, stride, no grad
            _global("collections", "OrderedDict"), b")R",  # backward hooks
            b"tR",
        ]
    out.append(b"u.")
    return b"".join(out)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    if 0 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    return b"\x8a\x08" + struct.pack("<q", value)  # LONG1, 8 bytes


def _tuple(values: Iterable[int]) -> bytes:
    return b"(" + b"".join(_int(int(v)) for v in values) + b"t"
