"""Write results so that a failed or interrupted run leaves the old output as it was.

Everything is written into a temporary folder beside the target, then moved into place
with renames (atomic on one filesystem).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codegen.errors import OutputError


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"{target.parent}: the output folder is not writable")


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `target` as a whole."""
    target = Path(target).absolute()
    _make_parent(target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder")
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield temp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rename(target, old / target.name)
        os.rename(temp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def staged_files(target: Path) -> Iterator[Path]:
    """Yield a temporary folder whose files are moved into `target` (kept otherwise as is)
    on success. Files are moved in sorted order except `model.py`, which goes last, so a
    reader never sees a model.py newer than its weights."""
    target = Path(target).absolute()
    _make_parent(target)
    try:
        target.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(target, os.W_OK):
        raise OutputError(f"{target}: the output folder is not writable")
    temp = Path(tempfile.mkdtemp(prefix=".codegen-tmp-", dir=target))
    try:
        yield temp
        files = sorted(p for p in temp.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == "model.py")
        for path in files:
            destination = target / path.relative_to(temp)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
