"""Exact top-k by inner product (= cosine on unit vectors): a chunked float32 matrix product.

Chunks bound the score buffer whatever the table size, and a per-chunk ``argpartition`` keeps only k
candidates per chunk, so memory stays O(chunk + k) and the cost is one pass over the vectors, like a bare
``matrix @ query``. With ``rows`` (a filter's allowed positions) only those rows are read.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController

__all__ = ["ExactIndex", "TopK", "exact_topk"]

TopK = tuple[NDArray[np.float32], NDArray[np.int64]]
"""(scores, positions), each ``(queries, k)``, best first; positions are rows of the matrix, -1 if none."""

# Up to 32 MiB of scores per chunk: few, big BLAS calls and bounded memory (measured: smaller
# chunks cost up to 15% on a batch of 16 queries over 1M rows).
_CHUNK_SCORES = 1 << 23
_GATHER_ROWS = 1 << 16
# Below this many (row x query) products one BLAS thread is faster: waking a second thread costs more than it
# saves, and on a busy 2-core host a multi-threaded small product took 10-20x longer (benchmarks/search.py).
_SINGLE_THREAD_BELOW = 1 << 18


def exact_topk(
    matrix: NDArray[np.float32],
    queries: NDArray[np.float32],
    k: int,
    rows: NDArray[np.int64] | None = None,
) -> TopK:
    """The ``k`` rows of ``matrix`` with the highest inner product with each query (among ``rows`` if given)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    total = matrix.shape[0] if rows is None else len(rows)
    chunk = max(_CHUNK_SCORES // max(len(queries), 1), 4096)
    if rows is not None:
        chunk = min(chunk, _GATHER_ROWS)  # a gather copies its rows: bound the copy
    best_scores: list[NDArray[np.float32]] = []
    best_rows: list[NDArray[np.int64]] = []
    with _threads_for(total * len(queries)):
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            block = matrix[start:stop] if rows is None else matrix[rows[start:stop]]
            # One query: a matrix-vector product (gemv), measurably faster than a 1-row matrix product.
            scores = (block @ queries[0])[None] if len(queries) == 1 else queries @ block.T
            top = _top_columns(scores, k)
            best_scores.append(np.take_along_axis(scores, top, axis=1))
            positions = top + start if rows is None else rows[start:stop][top]
            best_rows.append(positions.astype(np.int64, copy=False))
    if not best_scores:
        empty = np.empty((len(queries), 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    scores = np.concatenate(best_scores, axis=1)
    positions = np.concatenate(best_rows, axis=1)
    top = _top_columns(scores, k)
    scores, positions = np.take_along_axis(scores, top, axis=1), np.take_along_axis(positions, top, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(positions, order, axis=1)


_CONTROLLER: ThreadpoolController | None = None


def _threads_for(products: int) -> AbstractContextManager[object]:
    global _CONTROLLER
    if products >= _SINGLE_THREAD_BELOW:
        return nullcontext()
    if _CONTROLLER is None:  # inspecting the loaded libraries costs ~0.2 ms: once per process
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _top_columns(scores: NDArray[np.float32], k: int) -> NDArray[np.intp]:
    """Column indices of the k largest scores per row (unordered)."""
    if scores.shape[1] <= k:
        return np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    return np.argpartition(scores, -k, axis=1)[:, -k:]


class ExactIndex:
    """Exact search over a matrix of unit vectors (small tables: no index to build or cache)."""

    def __init__(self, vectors: NDArray[np.float32]) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, queries: NDArray[np.float32], k: int, allowed: Any = None) -> TopK:
        """Top-k positions per query; ``allowed`` (an ``Allowed``) restricts them to its rows."""
        return exact_topk(self.vectors, queries, k, rows=None if allowed is None else allowed.rows)
