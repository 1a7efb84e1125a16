"""`codegen dump`: OUT_DIR/weights/*.npy -> one state_dict .pth (no pickled objects
beyond tensors: it loads with torch.load(path, weights_only=True)).

Streams tensor by tensor and does not import torch (see codegen/pth.py): the .pth costs
the time of copying the bytes, and memory does not grow with the model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from codegen.errors import InputError, OutputError
from codegen.pth import NpyTensor, write_state_dict


def dump(out_dir: Path, target: Path) -> int:
    """Write the state_dict; return the number of tensors."""
    out_dir, target = Path(out_dir), Path(target)
    index_path = out_dir / "weights" / "index.json"
    if not index_path.is_file():
        raise InputError(f"{index_path}: not found; run 'codegen build' first")
    tensors = []
    for key in json.loads(index_path.read_text()):
        path = out_dir / "weights" / f"{key}.npy"
        try:
            tensors.append((key, NpyTensor.open(path)))
        except (OSError, ValueError) as exc:
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
