"""Rows of one snapshot held in memory by media id, for a long-lived reader (the lake browser).

``hydrate`` joins each search's hits with their media, metadata and thumbnail rows. One query at a time,
that is a filtered scan per table — fine for ``mmp search``, but at a million rows it costs more than the
vector search itself. A server answering many queries on one snapshot builds this index once instead: a
media id → position map per table and the columns asked for so far, loaded column by column on first use.
A snapshot never changes, so the index never goes stale; thumbnails are kept as sizes only (the bytes are
fetched by URL), read batch by batch so memory stays flat.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake import Snapshot
from mm_platform.tables import DERIVED

__all__ = ["RowIndex"]


class RowIndex:
    """Media, metadata and thumbnail sizes of ``snapshot``, by media id."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._positions: dict[str, dict[str, int]] = {}
        self._columns: dict[tuple[str, str], pa.Array] = {}
        self._thumbnail_sizes: dict[str, int] | None = None
        self._lock = threading.Lock()

    def rows(
        self, table: str, media_ids: Sequence[str], columns: Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """``{media_id: {column: value}}`` for the ids found in ``table`` (all columns when None)."""
        names = list(columns) if columns is not None else self.snapshot.schema(table).names
        with self._lock:
            positions = self._positions_of(table)
            arrays = {name: self._column(table, name) for name in names}
        found = [(m, positions[m]) for m in media_ids if m in positions]
        if not found:
            return {}
        take = pa.array([p for _, p in found], pa.int64())
        values = {name: array.take(take).to_pylist() for name, array in arrays.items()}
        return {m: {name: values[name][i] for name in names} for i, (m, _) in enumerate(found)}

    def thumbnail_sizes(self, media_ids: Sequence[str]) -> dict[str, int]:
        with self._lock:
            if self._thumbnail_sizes is None:
                sizes: dict[str, int] = {}
                is_thumb = pc.field("kind") == "thumbnail"
                derived = self.snapshot.dataset(DERIVED.name)
                for batch in derived.to_batches(columns=["media_id", "data"], filter=is_thumb):
                    lengths = pc.binary_length(batch.column(1)).to_pylist()
                    for media_id, size in zip(batch.column(0).to_pylist(), lengths, strict=True):
                        if size is not None:
                            sizes[media_id] = size
                self._thumbnail_sizes = sizes
        return {m: self._thumbnail_sizes[m] for m in media_ids if m in self._thumbnail_sizes}

    def _positions_of(self, table: str) -> dict[str, int]:
        if table not in self._positions:
            ids = self._column(table, "media_id").to_pylist()
            self._positions[table] = {media_id: i for i, media_id in enumerate(ids)}
        return self._positions[table]

    def _column(self, table: str, name: str) -> pa.Array:
        # Every column is read the same way (the whole table, no filter), so row i is the same row in each.
        key = (table, name)
        if key not in self._columns:
            self._columns[key] = self.snapshot.table(table, columns=[name]).column(0).combine_chunks()
        return self._columns[key]
