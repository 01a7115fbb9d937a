"""File lists in the shape a branch records them (path, size, modification time, rows, statistics):
read from main's Delta versions, and changed by a branch publish's adds and removes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from mm_platform.lake.files import FileAdd
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_state import read_state

FILE_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("modification_time", pa.int64()),
        pa.field("num_records", pa.int64()),
        pa.field("stats", pa.string()),
    ]
)


def main_files(location: LakeLocation, table: str, version: int) -> tuple[pa.Table, pa.Schema]:
    """The files (with statistics) of main's ``table`` at Delta ``version``, in the branch record's shape."""
    dt = DeltaTable(location.uri(table), version=version, storage_options=dict(location.storage_options))
    return files_of(dt), pa.schema(dt.schema().to_arrow())


def files_of(dt: DeltaTable) -> pa.Table:
    flat = pa.table(dt.get_add_actions(flatten=True))
    rows = flat.to_pylist()
    stats = [json.dumps(_stats_of(row), default=_json_default) for row in rows]
    return pa.table(
        {
            "path": pa.array([r["path"] for r in rows], pa.string()),
            "size_bytes": pa.array([r.get("size_bytes") for r in rows], pa.int64()),
            "modification_time": pa.array([_millis(r.get("modification_time")) for r in rows], pa.int64()),
            "num_records": pa.array([r.get("num_records") for r in rows], pa.int64()),
            "stats": pa.array(stats, pa.string()),
        },
        schema=FILE_SCHEMA,
    )


def main_paths(location: LakeLocation, table: str, version: int) -> list[str]:
    recorded = read_state(location, table, version)
    if recorded is not None:
        return recorded[0]
    return [str(p) for p in main_files(location, table, version)[0].column("path").to_pylist()]


def _millis(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return str(value)


def _stats_of(row: Mapping[str, Any]) -> dict[str, Any]:
    stats: dict[str, Any] = {"numRecords": row.get("num_records"), "minValues": {}, "maxValues": {}, "nullCount": {}}
    for column, value in row.items():
        for prefix, key in (("min.", "minValues"), ("max.", "maxValues"), ("null_count.", "nullCount")):
            if column.startswith(prefix) and value is not None:
                stats[key][column[len(prefix) :]] = value
    return stats


def flat_actions(files: pa.Table) -> pa.Table:
    """A file list in the shape of delta-rs ``get_add_actions(flatten=True)`` (min./max. per column)."""
    rows = []
    for row in files.to_pylist():
        stats = json.loads(row["stats"] or "{}")
        flat = {"path": row["path"], "size_bytes": row["size_bytes"], "num_records": row["num_records"]}
        flat.update({f"min.{k}": v for k, v in stats.get("minValues", {}).items() if not isinstance(v, dict)})
        flat.update({f"max.{k}": v for k, v in stats.get("maxValues", {}).items() if not isinstance(v, dict)})
        rows.append(flat)
    return pa.Table.from_pylist(rows) if rows else files.select(["path", "size_bytes", "num_records"])


def with_changes(files: pa.Table, adds: Sequence[FileAdd], removes: Sequence[str]) -> pa.Table:
    """``files`` without ``removes`` and with ``adds`` (a commit's effect on a file list)."""
    kept = files.filter(pc.invert(pc.is_in(files.column("path"), value_set=pa.array(list(removes), pa.string()))))
    added = pa.table(
        {
            "path": pa.array([a.path for a in adds], pa.string()),
            "size_bytes": pa.array([a.size for a in adds], pa.int64()),
            "modification_time": pa.array([a.modification_time for a in adds], pa.int64()),
            "num_records": pa.array([a.num_records for a in adds], pa.int64()),
            "stats": pa.array([a.stats for a in adds], pa.string()),
        },
        schema=FILE_SCHEMA,
    )
    return pa.concat_tables([kept.cast(FILE_SCHEMA), added])


def file_add(row: Mapping[str, Any]) -> FileAdd:
    """A recorded file as an add action for a merge commit (the file is committed where it lies)."""
    return FileAdd(
        path=row["path"],
        size=int(row["size_bytes"] or 0),
        modification_time=int(row["modification_time"] or 0),
        num_records=int(row["num_records"] or 0),
        stats=row["stats"] or "{}",
    )
