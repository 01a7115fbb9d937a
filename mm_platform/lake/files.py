"""Parquet files written by us and described to Delta as add actions (with statistics for file skipping)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mm_platform.lake.storage import LakeLocation, storage_write_error

# Long strings are left out of min/max stats: Delta readers would have to truncate them anyway.
_MAX_STAT_STRING = 256
ROWS_PER_FILE = 250_000


@dataclass(frozen=True)
class FileAdd:
    """A Parquet file inside a table folder, not yet (or already) referenced by the Delta log."""

    path: str
    """Relative to the table root."""
    size: int
    modification_time: int
    """Milliseconds since the epoch."""
    num_records: int
    stats: str
    """Delta statistics JSON: numRecords, minValues, maxValues, nullCount."""


@dataclass(frozen=True)
class FileRemove:
    """A file the commit removes from the table (it stays on disk for time travel until vacuum)."""

    path: str
    size: int | None


def _stat_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, str) and len(value) > _MAX_STAT_STRING:
        return None
    return value


def delta_stats(metadata: pq.FileMetaData) -> str:
    """Delta statistics (numRecords, minValues, maxValues, nullCount) for the flat columns of a file.

    Taken from the statistics the Parquet writer already computed, so they cost nothing extra.
    """
    min_values: dict[str, Any] = {}
    max_values: dict[str, Any] = {}
    null_count: dict[str, int] = {}
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            column = group.column(column_index)
            name = column.path_in_schema
            stats = column.statistics
            if "." in name or stats is None:
                continue  # nested (list, map, struct) columns keep no Delta stats here
            if not stats.has_null_count:
                null_count.pop(name, None)
            else:
                null_count[name] = null_count.get(name, 0) + stats.null_count
            if column.physical_type in ("BOOLEAN", "FIXED_LEN_BYTE_ARRAY") or not stats.has_min_max:
                continue
            low, high = _stat_value(stats.min), _stat_value(stats.max)
            if isinstance(low, bytes) or low is None or high is None:
                continue
            min_values[name] = low if name not in min_values else min(min_values[name], low)
            max_values[name] = high if name not in max_values else max(max_values[name], high)
    return json.dumps(
        {"numRecords": metadata.num_rows, "minValues": min_values, "maxValues": max_values, "nullCount": null_count},
        default=str,
    )


def _is_binary(data_type: pa.DataType) -> bool:
    return pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: not floats, vectors or binary blobs, whose values rarely repeat.

    Trying a dictionary on 10k 64-d vectors costs more than the rest of the write (and the file grows).
    """

    def repeats(data_type: pa.DataType) -> bool:
        if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
            return repeats(data_type.value_type)
        return not (pa.types.is_floating(data_type) or _is_binary(data_type))

    return [field.name for field in schema if repeats(field.type)]


def compression_by_column(schema: pa.Schema) -> dict[str, str]:
    """zstd, except for binary blobs: they hold encoded media (JPEG/PNG thumbnails, keyframes), which zstd
    shrank by 0.4% at twice the write time of the whole file (and a re-write pays it again)."""
    return {field.name: "none" if _is_binary(field.type) else "zstd" for field in schema}


def write_parquet_files(location: LakeLocation, table_name: str, rows: pa.Table, tag: str) -> list[FileAdd]:
    """Write rows as Parquet files in the table's folder; invisible to readers until committed."""
    adds: list[FileAdd] = []
    for start in range(0, max(rows.num_rows, 1), ROWS_PER_FILE):
        chunk = rows.slice(start, ROWS_PER_FILE)
        if chunk.num_rows == 0:
            break
        rel = f"part-{tag}-{uuid.uuid4().hex[:12]}.parquet"
        target = location.fs_path(table_name, rel)
        metadata = _write_file(chunk, target, location, where=f"{table_name}/{rel}")
        info = location.fs.get_file_info(target)
        adds.append(
            FileAdd(
                path=rel,
                size=int(info.size or 0),
                modification_time=int(time.time() * 1000),
                num_records=chunk.num_rows,
                stats=delta_stats(metadata),
            )
        )
    return adds


def _write_file(rows: pa.Table, target: str, location: LakeLocation, *, where: str) -> pq.FileMetaData:
    """One Parquet file; a failed write (a full disk) becomes one StorageError and leaves no writer behind."""
    collector: list[pq.FileMetaData] = []
    writer: pq.ParquetWriter | None = None
    try:
        writer = pq.ParquetWriter(
            target,
            rows.schema,
            metadata_collector=collector,
            filesystem=location.fs,
            compression=compression_by_column(rows.schema),
            use_dictionary=dictionary_columns(rows.schema),
            # Statistics for flat, non-binary columns only: nested ones and blobs feed no Delta stats, and a
            # blob's min/max would be copied whole into the footer.
            write_statistics=[f.name for f in rows.schema if not (pa.types.is_nested(f.type) or _is_binary(f.type))],
        )
        writer.write_table(rows)
        writer.close()
    except (OSError, RuntimeError) as exc:  # opening writes the header: a full disk can fail right there
        if writer is not None:
            writer.is_open = False  # its close failed already: do not let __del__ try again at exit
        raise storage_write_error(location.uri(where), exc) from exc
    return collector[0]


def read_parquet_file(
    location: LakeLocation, table_name: str, rel_path: str, columns: list[str] | None = None
) -> pa.Table:
    """One data file, whole or in ``columns``.

    A local file is memory-mapped and decoded in the calling thread: half the time of a buffered read for a
    file of blobs (6.5 vs 12 ms for a 31 MB file of thumbnails), and a stage's re-write of a file does not
    queue behind other work in Arrow's shared pool. Data files are never changed in place, so a mapping is safe.
    """
    path = location.fs_path(table_name, rel_path)
    if location.is_s3:
        return pq.read_table(path, filesystem=location.fs, columns=columns)
    with pa.memory_map(path) as source:
        return pq.read_table(source, columns=columns, use_threads=False)


def table_file_paths(dt: object) -> list[str]:
    """Paths (relative to the table root) of the files in a Delta table's current version."""
    actions = pa.table(dt.get_add_actions(flatten=False))  # type: ignore[attr-defined]
    return [str(p) for p in actions.column("path").to_pylist()]


def delta_dataset(location: LakeLocation, dt: object) -> object:
    """A Delta table version's files as a pyarrow dataset read with pyarrow's own file system.

    delta-rs's Python file-system bridge (``to_pyarrow_dataset``) aborts the interpreter at exit on this
    stack; our tables use no deletion vectors or column mapping, so the log's file list is the table.
    """
    import pyarrow.dataset as ds

    paths = [uri.removeprefix("s3://") for uri in dt.file_uris()]  # type: ignore[attr-defined]
    schema = pa.schema(dt.schema().to_arrow())  # type: ignore[attr-defined]
    return ds.dataset(paths, schema=schema, format="parquet", filesystem=location.fs)


_MAX_SURVIVOR_SLICES = 256


def rows_without(rows: pa.Table, drop: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``rows`` less those where ``drop`` is true.

    A few dropped rows leave long runs of kept ones: those are taken as zero-copy slices, so re-writing a
    file of large blobs without a handful of its rows copies the blobs once (into the new file), not twice.
    """
    dropped = np.flatnonzero(drop.to_numpy(zero_copy_only=False))
    if len(dropped) >= _MAX_SURVIVOR_SLICES:
        return rows.filter(pc.invert(drop))
    pieces, start = [], 0
    for index in dropped.tolist():
        if index > start:
            pieces.append(rows.slice(start, index - start))
        start = index + 1
    if start < rows.num_rows:
        pieces.append(rows.slice(start))
    return pa.concat_tables(pieces) if pieces else rows.slice(0, 0)
