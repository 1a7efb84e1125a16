"""Dtypes numpy has no type of its own for. TF hands out bfloat16 arrays as ml_dtypes'
bfloat16; a .npy file holds their bits as uint16 (numpy cannot read the type back by name)
and graph.json / weights/index.json name the real dtype."""

from __future__ import annotations

import ml_dtypes
import numpy as np

# dtype name -> the dtype its bits are stored as
STORED_AS = {"bfloat16": "uint16"}


def stored_dtype(dtype: str) -> str:
    """The dtype a tensor of `dtype` has in a .npy file."""
    return STORED_AS.get(dtype, dtype)


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of an IR dtype name ("bfloat16" included)."""
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def to_torch(array: np.ndarray, dtype: str | None = None):
    """torch.from_numpy, for bfloat16 arrays too (through their bits); `dtype` names the
    real dtype of an array of stored bits (a .npy file's uint16 for "bfloat16")."""
    import torch

    if array.dtype.name == "bfloat16" or (dtype == "bfloat16" and array.dtype == np.uint16):
        return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)
