"""What the cross-table and vector checks share: the stage's rows of a table, failing rows as samples, and a
vectorised membership test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake.audit import AuditContext

__all__ = ["EMBEDDING_KEYS", "SAMPLE_ROWS", "is_in", "plain_scalar", "sample_rows", "staged_rows"]

SAMPLE_ROWS = 10
EMBEDDING_KEYS = ("subject_id", "model_id", "media_id")
"""The columns that name an embedding row in a failing sample."""


def staged_rows(context: AuditContext, name: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The stage's new rows of a table (empty with the table's schema when the table is not staged)."""
    table = context.staged[name] if name in context.staged else context.base.catalog[name].schema.empty_table()
    return table.select(list(columns)) if columns is not None else table


def sample_rows(table: pa.Table, mask: np.ndarray, keys: Sequence[str], **extra: np.ndarray) -> list[dict[str, Any]]:
    """Up to ``SAMPLE_ROWS`` failing rows as key columns (plus per-row extras such as the observed value)."""
    where = np.flatnonzero(mask)[:SAMPLE_ROWS]
    rows = table.select(list(keys)).take(pa.array(where, type=pa.int64())).to_pylist()
    for row, index in zip(rows, where, strict=True):
        row.update({name: plain_scalar(values[index]) for name, values in extra.items()})
    return rows


def plain_scalar(value: Any) -> Any:
    """A numpy scalar as a plain Python value (failing rows go into the publish log as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def is_in(values: pa.Array | pa.ChunkedArray, allowed: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value of ``values``: is it in ``allowed``? (null → False)."""
    if isinstance(allowed, pa.ChunkedArray):
        allowed = allowed.combine_chunks()
    return np.asarray(pc.is_in(values, value_set=allowed).fill_null(False), dtype=bool)
