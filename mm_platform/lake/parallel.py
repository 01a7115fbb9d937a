"""One small thread pool for the lake's side-by-side work (writing a stage's tables, hashing them).

Threads, because Parquet encoding and hashing release the GIL; one long-lived pool, because starting
threads per call cost ~0.7 ms each, a noticeable part of a small publish. Tasks must not call
``map_parallel`` themselves (a full pool would wait on itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mmp-lake")


def map_parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, run side by side, in order; a single item runs inline."""
    work = list(items)
    if len(work) <= 1:
        return [fn(item) for item in work]
    return list(_POOL.map(fn, work))
