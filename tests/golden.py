"""Golden files of generated code under tests/data/expected/<case>/, and snapshots of the
command line's output for bad inputs under tests/data/snapshots/<case>.txt.

To refresh both after an intended change of the generated code, run the tests with
CODEGEN_UPDATE_GOLDEN=1 (e.g. `CODEGEN_UPDATE_GOLDEN=1 python -m pytest -m 'not zoo or zoo'`)
and review the diff with git.
"""

from __future__ import annotations

import os
from pathlib import Path

EXPECTED = Path(__file__).parent / "data" / "expected"


def check_golden(case: str, generated: Path) -> None:
    golden = EXPECTED / case / generated.name
    text = generated.read_text()
    if os.environ.get("CODEGEN_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"{golden} missing: run with CODEGEN_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"generated {generated.name} differs from {golden}; if intended, refresh with "
        "CODEGEN_UPDATE_GOLDEN=1 and review the diff"
    )


SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"


def check_snapshot(case: str, text: str) -> None:
    """Compare `text` (a CLI run: command, exit code, output) with tests/data/snapshots/<case>.txt."""
    snapshot = SNAPSHOTS / f"{case}.txt"
    if os.environ.get("CODEGEN_UPDATE_GOLDEN") == "1":
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(text)
    assert snapshot.is_file(), f"{snapshot} missing: run with CODEGEN_UPDATE_GOLDEN=1"
    assert text == snapshot.read_text(), (
        f"the CLI output differs from {snapshot}:\n{text}\nif intended, refresh with "
        "CODEGEN_UPDATE_GOLDEN=1 and review the diff"
    )
