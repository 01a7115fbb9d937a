"""Parquet files written by us and described to Delta as add actions (with statistics for file skipping)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mm_platform.lake.storage import LakeLocation

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


def delta_stats(table: pa.Table) -> str:
    """Statistics in the Delta log format, for the top-level primitive columns."""
    min_values: dict[str, Any] = {}
    max_values: dict[str, Any] = {}
    null_count: dict[str, int] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_map(kind) or pa.types.is_struct(kind):
            continue  # Delta nests these; we keep stats for flat columns only.
        null_count[name] = column.null_count
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_string(kind)
            or pa.types.is_timestamp(kind)
            or pa.types.is_date(kind)
        ):
            continue
        if column.null_count == len(column):
            continue
        bounds = pc.min_max(column).as_py()
        low, high = _stat_value(bounds["min"]), _stat_value(bounds["max"])
        if low is not None and high is not None:
            min_values[name], max_values[name] = low, high
    return json.dumps(
        {"numRecords": table.num_rows, "minValues": min_values, "maxValues": max_values, "nullCount": null_count},
        default=str,
    )


def write_parquet_files(location: LakeLocation, table_name: str, rows: pa.Table, tag: str) -> list[FileAdd]:
    """Write rows as Parquet files in the table's folder; invisible to readers until committed."""
    adds: list[FileAdd] = []
    for start in range(0, max(rows.num_rows, 1), ROWS_PER_FILE):
        chunk = rows.slice(start, ROWS_PER_FILE)
        if chunk.num_rows == 0:
            break
        rel = f"part-{tag}-{uuid.uuid4().hex[:12]}.parquet"
        target = location.fs_path(table_name, rel)
        pq.write_table(chunk, target, filesystem=location.fs, compression="zstd")
        info = location.fs.get_file_info(target)
        adds.append(
            FileAdd(
                path=rel,
                size=int(info.size or 0),
                modification_time=int(time.time() * 1000),
                num_records=chunk.num_rows,
                stats=delta_stats(chunk),
            )
        )
    return adds


def read_parquet_file(
    location: LakeLocation, table_name: str, rel_path: str, columns: list[str] | None = None
) -> pa.Table:
    return pq.read_table(location.fs_path(table_name, rel_path), filesystem=location.fs, columns=columns)


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
