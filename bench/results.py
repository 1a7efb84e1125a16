"""bench/RESULTS.md is written by two scripts; each owns one marked section."""

from __future__ import annotations

from pathlib import Path

HEADER = "# Benchmark results\n\nWritten by `python bench/run.py` and `python bench/memory_slope.py`; do not edit by hand.\n"


def write_section(path: Path, owner: str, text: str) -> None:
    begin, end = f"<!-- begin {owner} -->", f"<!-- end {owner} -->"
    current = path.read_text() if path.exists() else HEADER
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)
