"""What search remembers per process: answers computed from a published snapshot, which never changes.

One bounded, thread-safe memo for all of them (active models, filter matches, label sets, open indexes),
instead of a hand-written ordered dict and lock in each module. The value is computed outside the lock: two
threads may compute the same answer once each, but a slow read never blocks other keys.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedMemo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """Keeps the ``size`` latest stored values; with ``lru``, a hit also counts as recent use."""

    def __init__(self, size: int, *, lru: bool = False) -> None:
        self.size = size
        self.lru = lru
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._values:
                return None
            if self.lru:
                self._values.move_to_end(key)
            return self._values[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
