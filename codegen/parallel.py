"""Per-tensor work on a few threads, results in order, memory bounded.

Writing, hashing and transposing a weight spend their time in C code that releases the
GIL (file I/O, hashlib on large buffers, numpy copies), so a couple of threads keep both
cores of a small machine busy. At most `ahead` items are in flight, so memory holds a few
tensors, never the model: weights still stream. CODEGEN_WORKERS=1 turns the threads off.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS = int(os.environ.get("CODEGEN_WORKERS", "0")) or max(1, min(4, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int = WORKERS,
                ahead: int | None = None) -> Iterator[R]:
    """`map(fn, items)` on `workers` threads. `items` is consumed lazily in the calling
    thread (so reading a checkpoint stays there), and the first exception is raised in
    order, after which nothing new starts."""
    if workers <= 1:
        yield from map(fn, items)
        return
    ahead = ahead or workers + 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="codegen-io")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
