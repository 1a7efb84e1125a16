"""`codegen dump`: OUT_DIR/weights/*.npy -> one state_dict .pth (no pickled objects
beyond tensors: it loads with torch.load(path, weights_only=True)).

Streams tensor by tensor and does not import torch (see codegen/pth.py): the .pth costs
the time of copying the bytes, and memory does not grow with the model.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from codegen.errors import InputError, OutputError
from codegen.progress import progress_bar
from codegen.tools.pth import NpyTensor, write_state_dict

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
    tensors = []
    for key in progress_bar(list(index), "reading weights", quiet=quiet):
        path = out_dir / "weights" / f"{key}.npy"
        try:
            tensors.append((key, NpyTensor.open(path, index[key].get("dtype", ""))))
        except Exception as exc:  # noqa: BLE001 - a damaged .npy raises many kinds
            raise InputError(f"{path}: cannot be read ({exc}); run 'codegen build' again") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(handle)
        try:
            count = write_state_dict(Path(temp), tensors)
            os.replace(temp, target)
        finally:
            Path(temp).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot be written ({exc.strerror})") from None
    return count
