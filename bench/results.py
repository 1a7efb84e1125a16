"""bench/RESULTS.md is written by several scripts; each owns one marked section. Also the
table cells and slope line that the memory-against-size benches share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER = "# Benchmark results\n\nWritten by the scripts of bench/ (each owns a marked section); do not edit by hand.\n"


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


def cell(measurement) -> str:
    """A table cell for one measured step: "9.1 s, 723 MB"."""
    return f"{measurement.wall:.1f} s, {measurement.peak_mb:,.0f} MB"


def slope_line(sizes: list[float], steps: list[list], labels: tuple[str, ...]) -> str:
    """Least-squares slope of each step's peak RSS over `sizes` (bytes of weights), one step
    per label (`steps[row][i]` is row's measurement of labels[i]; a None is left out)."""
    slopes = []
    for i, label in enumerate(labels):
        points = [(size, row[i].peak) for size, row in zip(sizes, steps) if row[i] is not None]
        slope = (float(np.polyfit(*np.array(points, dtype=float).T, 1)[0]) if len(points) > 1
                 else float("nan"))
        slopes.append(f"{label} {slope:.3f}")
    return "Slope of peak RSS against weight bytes: " + ", ".join(slopes) + "."
