"""`codegen dump`: OUT_DIR/weights/*.npy -> one state_dict .pth (no pickled objects
beyond tensors: it loads with torch.load(path, weights_only=True))."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from codegen.errors import InputError, OutputError
from codegen.progress import progress_bar

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")  # a state_dict key, no path


def dump(out_dir: Path, target: Path, *, quiet: bool = True) -> int:
    """Write the state_dict; return the number of tensors."""
    out_dir, target = Path(out_dir), Path(target)
    index_path = out_dir / "weights" / "index.json"
    if not index_path.is_file():
        raise InputError(f"{index_path}: not found; run 'codegen build' first")
    try:
        index = json.loads(index_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{index_path}: not valid JSON ({exc}); run 'codegen build' again") from None
    if not isinstance(index, dict) or not all(_SAFE_KEY.match(key) for key in index):
        raise InputError(f"{index_path}: not a weights index written by codegen; "
                         "run 'codegen build' again")
    keys = list(index)
    import torch  # after the checks: a bad index fails fast

    state = {}
    for key in progress_bar(keys, "reading weights", quiet=quiet):
        path = out_dir / "weights" / f"{key}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - a damaged .npy raises many kinds
            raise InputError(f"{path}: cannot be read ({exc}); run 'codegen build' again") from None
        state[key] = torch.from_numpy(array)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(handle)
        torch.save(state, temp)
        os.replace(temp, target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot be written ({exc.strerror})") from None
    return len(state)
