"""Listings in columns: a source lists key-sorted chunks as Arrow tables, so a diff over a million objects
never builds a Python object per file (the batches it plans are saved in the same columns).

:data:`LISTING_SCHEMA` is what :meth:`Source.list_tables` yields and what a planned batch manifest stores;
:func:`objects_of` turns a (small) table back into :class:`ObjectInfo` for the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC
from itertools import islice
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.sources.object_info import ObjectInfo

__all__ = ["DEFAULT_CHUNK_KEYS", "LISTING_SCHEMA", "listing_table", "local_listing_table", "objects_of", "table_chunks"]

DEFAULT_CHUNK_KEYS = 10_000
"""Keys per listed table: big enough that per-chunk costs (a media read, a table build) vanish, small enough
to keep a diff's memory flat."""

_TIMESTAMP = pa.timestamp("us", tz="UTC")
LISTING_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("etag", pa.string()),
        pa.field("version_id", pa.string()),
        pa.field("last_modified", _TIMESTAMP, nullable=False),
    ]
)
"""The :class:`ObjectInfo` fields but ``source`` (one per listing), in columns."""


def listing_table(objects: Iterable[ObjectInfo]) -> pa.Table:
    """``objects`` (key-sorted, of one source) in :data:`LISTING_SCHEMA`."""
    rows = list(objects)
    return pa.table(
        [
            pa.array([o.uri for o in rows], pa.string()),
            pa.array([o.key for o in rows], pa.string()),
            pa.array([o.size_bytes for o in rows], pa.int64()),
            pa.array([o.etag for o in rows], pa.string()),
            pa.array([o.version_id for o in rows], pa.string()),
            pa.array([o.last_modified.astimezone(UTC) for o in rows], _TIMESTAMP),
        ],
        schema=LISTING_SCHEMA,
    )


def local_listing_table(
    uris: list[str] | pa.Array, keys: list[str] | pa.Array, sizes: list[int] | pa.Array, mtimes_ns: list[int] | pa.Array
) -> pa.Table:
    """A local folder's listed files (lists, or Arrow arrays of strings and int64s); the ETag is the fingerprint
    ``<size>-<mtime_ns>``, computed in Arrow."""
    size = _arrow(sizes, pa.int64())
    mtime = _arrow(mtimes_ns, pa.int64())
    etag = pc.binary_join_element_wise(pc.cast(size, pa.string()), pc.cast(mtime, pa.string()), "-")
    modified = mtime.cast(pa.timestamp("ns", tz="UTC")).cast(_TIMESTAMP, safe=False)  # truncated to µs
    uri, key = _arrow(uris, pa.string()), _arrow(keys, pa.string())
    return pa.table([uri, key, size, etag, pa.nulls(len(key), pa.string()), modified], schema=LISTING_SCHEMA)


def _arrow(values: list[Any] | pa.Array, type_: pa.DataType) -> pa.Array:
    return values if isinstance(values, pa.Array) else pa.array(values, type_)


def objects_of(table: pa.Table, source: str) -> list[ObjectInfo]:
    """The rows of a :data:`LISTING_SCHEMA` table as objects of ``source``, in table order."""
    columns = [table.column(name).to_pylist() for name in LISTING_SCHEMA.names[:-1]]
    # Naive from Arrow, then ``datetime.UTC`` (Arrow would attach ``ZoneInfo("UTC")``, which compares unequal).
    naive = table.column("last_modified").cast(pa.timestamp("us")).to_pylist()
    return [
        ObjectInfo(
            uri=uri,
            source=source,
            key=key,
            size_bytes=size,
            etag=etag,
            version_id=version,
            last_modified=when.replace(tzinfo=UTC),
        )
        for uri, key, size, etag, version, when in zip(*columns, naive, strict=True)
    ]


def table_chunks(objects: Iterator[ObjectInfo], size: int) -> Iterator[pa.Table]:
    """A listing of objects as tables of at most ``size`` rows (none for an empty listing)."""
    while chunk := list(islice(objects, size)):
        yield listing_table(chunk)
