"""Each published table version's file list, recorded once by the publisher, so that a reader opens a
snapshot with one small read per table instead of a Delta log replay.

A Delta version never changes, so the record of (table, version) is valid forever; it is only a shortcut:
when it is missing (an older lake, a crash before it was written, version 0) readers load the Delta log.
The records live outside the table folders (``_table_states/``), where Delta's vacuum never looks.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from mm_platform.lake.storage import LakeLocation

STATE_DIR = "_table_states"
_SCHEMA_KEY = b"mmp.table_schema"


def state_path(name: str, version: int) -> str:
    return f"{STATE_DIR}/{name}/{version:020d}.parquet"


def record_state(location: LakeLocation, name: str, dt: DeltaTable) -> list[int]:
    """Record the files of ``dt`` at its loaded version (idempotent: the same version, the same files).

    Returns the files' sizes in bytes.
    """
    actions = pa.table(dt.get_add_actions(flatten=False)).select(["path", "size_bytes"])
    return record_files(location, name, dt.version(), actions, pa.schema(dt.schema().to_arrow()))


def record_files(location: LakeLocation, name: str, version: int, files: pa.Table, schema: pa.Schema) -> list[int]:
    """Record ``files`` (columns ``path``, ``size_bytes``) as the table's files at ``version``."""
    record = files.select(["path", "size_bytes"]).replace_schema_metadata(
        {_SCHEMA_KEY: schema.serialize().to_pybytes()}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(record, sink, compression="zstd")
    location.write_bytes(state_path(name, version), sink.getvalue().to_pybytes(), durable=False)
    return [int(size) for size in record.column("size_bytes").to_pylist()]


def files_after(dt: DeltaTable, adds: Sequence[tuple[str, int]], removes: Sequence[str]) -> pa.Table:
    """The files (``path``, ``size_bytes``) ``dt``'s version will hold once a commit of these actions lands."""
    before = pa.table(dt.get_add_actions(flatten=False)).select(["path", "size_bytes"])
    kept = before.filter(pc.invert(pc.is_in(before.column("path"), value_set=pa.array(removes, pa.string()))))
    added = pa.table(
        {
            "path": pa.array([path for path, _ in adds], pa.string()),
            "size_bytes": pa.array([size for _, size in adds], pa.int64()),
        }
    )
    return pa.concat_tables([kept.cast(added.schema), added])


def read_state(location: LakeLocation, name: str, version: int) -> tuple[list[str], pa.Schema] | None:
    """(file paths relative to the table, table schema) at ``version``, or None when not recorded."""
    payload = location.read_bytes(state_path(name, version))
    if payload is None:
        return None
    try:
        record = pq.read_table(pa.BufferReader(payload))
    except (pa.ArrowInvalid, OSError):
        return None  # unreadable: the Delta log is the truth
    metadata = record.schema.metadata or {}
    if _SCHEMA_KEY not in metadata:
        return None
    schema = pa.ipc.read_schema(pa.BufferReader(metadata[_SCHEMA_KEY]))
    return [str(p) for p in record.column("path").to_pylist()], schema


def prune_states(location: LakeLocation, name: str, keep_versions: set[int]) -> int:
    """Delete the records of versions no retained snapshot pins; returns how many went."""
    deleted = 0
    for info in location.list_files(f"{STATE_DIR}/{name}"):
        version = int(info.base_name.split(".")[0]) if info.base_name.split(".")[0].isdigit() else None
        if version is not None and version not in keep_versions:
            location.delete_file(f"{STATE_DIR}/{name}/{info.base_name}")
            deleted += 1
    return deleted
