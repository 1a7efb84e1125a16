"""codegen/pth.py writes what torch.save writes, without torch, tensor by tensor."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from codegen.tools.pth import ALIGNMENT, NpyTensor, write_state_dict

ARRAYS = {
    "conv.weight": np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32),
    "bn.num_batches_tracked": np.zeros((), np.int64),
    "big.int": np.arange(7, dtype=np.int64) * 2**40,
    "double": np.linspace(0, 1, 5),
    "half": np.ones((2, 3), np.float16),
    "flags": np.array([True, False, True]),
    "empty": np.zeros((0, 3), np.float32),
    "bytes": np.arange(5, dtype=np.uint8),
}


@pytest.fixture
def written(tmp_path):
    items = []
    for key, array in ARRAYS.items():
        np.save(tmp_path / f"{key}.npy", array, allow_pickle=False)
        items.append((key, NpyTensor.open(tmp_path / f"{key}.npy")))
    target = tmp_path / "model.pth"
    assert write_state_dict(target, items) == len(ARRAYS)
    return target


@pytest.mark.parametrize("mmap", [False, True])
def test_torch_loads_it_safely_with_the_same_values(written, mmap):
    state = torch.load(written, weights_only=True, mmap=mmap)
    assert list(state) == list(ARRAYS)
    for key, array in ARRAYS.items():
        tensor = state[key]
        assert tensor.dtype == torch.from_numpy(array).dtype
        assert tuple(tensor.shape) == array.shape
        np.testing.assert_array_equal(tensor.numpy(), array)
    assert state["conv.weight"].stride() == (12, 4, 2, 1)


def test_records_are_aligned_like_torch_save(written):
    with zipfile.ZipFile(written) as archive, open(written, "rb") as handle:
        for info in archive.infolist():
            handle.seek(info.header_offset + 26)
            name_length, extra_length = np.frombuffer(handle.read(4), "<u2")
            start = info.header_offset + 30 + int(name_length) + int(extra_length)
            assert start % ALIGNMENT == 0, info.filename
        assert archive.read("model/byteorder") == b"little"


def test_fortran_order_and_object_arrays_are_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match="unsupported"):
        NpyTensor.open(tmp_path / "f.npy")
    np.save(tmp_path / "c.npy", np.ones(3, np.complex64))
    with pytest.raises(ValueError, match="unsupported"):
        NpyTensor.open(tmp_path / "c.npy")
