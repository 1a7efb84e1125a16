"""Progress bars (rich) for long steps; silent when stderr is not a terminal or --quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], label: str, *, quiet: bool = False) -> Iterator[T]:
    items = list(items)
    if quiet or not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, transient=True, console=None)
