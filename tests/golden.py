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
    _compare(EXPECTED / case / generated.name, generated.read_text(),
             f"generated {generated.name} differs from {EXPECTED / case / generated.name}")


def _compare(expected: Path, text: str, problem: str) -> None:
    """`text` equals the file `expected`; CODEGEN_UPDATE_GOLDEN=1 rewrites the file instead."""
    if os.environ.get("CODEGEN_UPDATE_GOLDEN") == "1":
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(text)
    assert expected.is_file(), f"{expected} missing: run with CODEGEN_UPDATE_GOLDEN=1"
    assert text == expected.read_text(), (
        f"{problem}; if intended, refresh with CODEGEN_UPDATE_GOLDEN=1 and review the diff"
    )


SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"


def check_snapshot(case: str, text: str) -> None:
    """Compare `text` (a CLI run: command, exit code, output) with tests/data/snapshots/<case>.txt."""
    snapshot = SNAPSHOTS / f"{case}.txt"
    _compare(snapshot, text, f"the CLI output differs from {snapshot}:\n{text}")
