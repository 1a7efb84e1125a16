"""Write results so that a failed, killed or interrupted run leaves the old output as it was.

An output folder is written as a whole into a temporary folder beside it, then swapped
into place. On Linux the swap is one `renameat2(RENAME_EXCHANGE)` call, so at every
instant the folder is either all old or all new; elsewhere it is two renames, and a run
killed between them is repaired by the next run (the old folder is put back).
Temporary folders left by killed runs are removed by the next run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codegen.errors import OutputError

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the output folder ({exc.strerror}); "
                          "choose another place with -o") from None
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder; choose another place with -o")


def _temp_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.codegen-{kind}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target: Path) -> None:
    """Remove temporary folders of runs that died; put back a folder lost mid-swap."""
    for kind in ("old", "tmp"):
        for path in sorted(target.parent.glob(_temp_prefix(target, kind) + "*")):
            pid = path.name[len(_temp_prefix(target, kind)):].split("-")[0]
            if pid.isdigit() and _pid_alive(int(pid)):
                continue  # another run is at work
            if kind == "old" and not target.exists() and (path / target.name).is_dir():
                os.rename(path / target.name, target)  # killed between the two renames
            shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when not available here."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _swap_in(temp: Path, target: Path) -> None:
    """Make `temp` the new `target`; the old folder is deleted afterwards."""
    if not target.exists():
        os.rename(temp, target)
        return
    if _exchange(temp, target):
        shutil.rmtree(temp, ignore_errors=True)  # now holds the old folder
        return
    old = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(target, 'old')}{os.getpid()}-",
                                dir=target.parent))
    os.rename(target, old / target.name)
    os.rename(temp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `target` as a whole.

    The caller may copy or hard-link files of the old `target` into it (`keep_file`)."""
    target = Path(target).absolute()
    if target.is_symlink():
        target = target.resolve()
    _make_parent(target)
    clean_leftovers(target)
    try:
        temp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(target, 'tmp')}{os.getpid()}-",
                                     dir=target.parent))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write in {target.parent} ({exc.strerror}); "
                          "choose another place with -o or fix the permissions") from None
    try:
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o777 & ~_umask()
        os.chmod(temp, mode)
        yield temp
        try:
            _swap_in(temp, target)
        except OSError as exc:
            raise OutputError(f"{target}: cannot be replaced ({exc.strerror}); check the "
                              "permissions of it and its parent, or if it is a mount point, "
                              "write to a folder inside it") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def keep_file(source: Path, destination: Path) -> None:
    """Carry a file of the old output into the staged one (a hard link when possible)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
