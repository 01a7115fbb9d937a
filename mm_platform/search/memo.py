"""What search remembers per process: answers computed from a published snapshot, which never changes.

One bounded, thread-safe memo for all of them (active models, filter matches, label sets, open indexes). The
eviction is ``cachetools``' (FIFO, or LRU where a hit should keep an entry alive); this adds only the lock,
since cachetools' caches are not thread-safe. The value is computed outside the lock: two threads may compute
the same answer once each, but a slow read never blocks other keys.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from cachetools import FIFOCache, LRUCache

__all__ = ["BoundedMemo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """Keeps the ``size`` latest stored values; with ``lru``, a hit also counts as recent use."""

    def __init__(self, size: int, *, lru: bool = False) -> None:
        self.size = size
        self.lru = lru
        self._values: FIFOCache[K, V] | LRUCache[K, V] = LRUCache(size) if lru else FIFOCache(size)
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._values[key] = value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
