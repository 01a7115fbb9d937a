"""Where a branch keeps itself: ``_branches/<name>/`` beside the tables, never inside a Delta log.

- ``branch.json``: the branch record (fork snapshot, parent, who made it, the base of its next merge);
  written last on create and deleted first on delete, so it is the branch's single existence point.
- ``_publish_log/``: the branch's own publish log (the same compare-and-swap Delta table as main's).
- ``tables/<table>/<version>.parquet``: the table's file list at each branch version (path, size, stats),
  the way ``_table_states/`` records main's versions. Version 0 without a record is the fork: main's Delta
  version pinned by the fork snapshot. The files themselves live in each table's own folder, uncommitted to
  its Delta log (as staged files are), so a branch copies no data, and a merge commits them as they are.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from mm_platform.errors import ConfigError
from mm_platform.lake.files import FileAdd
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_state import read_state

BRANCHES_DIR = "_branches"
MAIN = "main"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SEQ_KEY, _SCHEMA_KEY = b"mmp.publish_seq", b"mmp.table_schema"
FILE_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("modification_time", pa.int64()),
        pa.field("num_records", pa.int64()),
        pa.field("stats", pa.string()),
    ]
)


def check_name(name: str) -> str:
    if name == MAIN or not _NAME.match(name) or "@" in name:
        raise ConfigError(
            f"invalid branch name {name!r}",
            hint="letters, digits, '.', '_' and '-' (up to 63), not 'main'",
        )
    return name


@dataclass(frozen=True)
class BranchRecord:
    """A branch: where it forked and what its next merge compares with."""

    name: str
    parent: str
    """``main`` or the branch it was created from (what ``mmp merge`` merges into by default)."""
    fork_seq: int
    """The parent's snapshot the branch started from."""
    fork_versions: Mapping[str, int]
    """Main's Delta version of each table in the fork (what branch version 0 of a table reads)."""
    created_at: str
    actor: str = ""
    message: str = ""
    merge_base_seq: int = 0
    """The branch snapshot already merged (0: none yet): the base of the next three-way merge."""
    merges: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    """One entry per merge: into, target publish seq, source seq."""

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["merges"] = [dict(m) for m in self.merges]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BranchRecord:
        return cls(
            name=doc["name"],
            parent=doc["parent"],
            fork_seq=int(doc["fork_seq"]),
            fork_versions={k: int(v) for k, v in doc["fork_versions"].items()},
            created_at=doc["created_at"],
            actor=doc.get("actor", ""),
            message=doc.get("message", ""),
            merge_base_seq=int(doc.get("merge_base_seq", 0)),
            merges=tuple(doc.get("merges", ())),
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class BranchStore:
    """The files of one branch under ``_branches/<name>/``."""

    def __init__(self, location: LakeLocation, name: str) -> None:
        self.location = location
        self.name = name
        self.folder = f"{BRANCHES_DIR}/{name}"
        self.log_name = f"{self.folder}/_publish_log"
        self._record: BranchRecord | None = None

    # --- the record -----------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.location.exists(f"{self.folder}/branch.json")

    def record(self, *, refresh: bool = False) -> BranchRecord:
        if self._record is None or refresh:
            doc = self.location.read_json(f"{self.folder}/branch.json")
            if doc is None:
                raise ConfigError(f"no branch named {self.name!r}", hint="`mmp branch list` shows the branches")
            self._record = BranchRecord.from_json(doc)
        return self._record

    def save_record(self, record: BranchRecord) -> None:
        self.location.write_json(f"{self.folder}/branch.json", record.to_json())
        self._record = record

    # --- table versions -------------------------------------------------------------------------------

    def _path(self, table: str, version: int) -> str:
        return f"{self.folder}/tables/{table}/{version:020d}.parquet"

    def latest_version(self, table: str) -> int:
        versions = [
            int(info.base_name.split(".")[0])
            for info in self.location.list_files(f"{self.folder}/tables/{table}")
            if info.base_name.endswith(".parquet") and info.base_name.split(".")[0].isdigit()
        ]
        return max(versions, default=0)

    def recorded_versions(self, table: str) -> list[int]:
        return sorted(
            int(info.base_name.split(".")[0])
            for info in self.location.list_files(f"{self.folder}/tables/{table}")
            if info.base_name.endswith(".parquet") and info.base_name.split(".")[0].isdigit()
        )

    def write_version(self, table: str, version: int, files: pa.Table, schema: pa.Schema, seq: int) -> None:
        """Record the table's files at ``version`` (written by the publish ``seq``; same input, same record)."""
        record = files.select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
        record = record.replace_schema_metadata(
            {_SEQ_KEY: str(seq).encode(), _SCHEMA_KEY: schema.serialize().to_pybytes()}
        )
        sink = pa.BufferOutputStream()
        pq.write_table(record, sink, compression="zstd")
        self.location.write_bytes(self._path(table, version), sink.getvalue().to_pybytes())

    def read_version(self, table: str, version: int) -> tuple[pa.Table, pa.Schema, int] | None:
        """(files, schema, publish seq) recorded for ``version``; None for an unrecorded version 0 (the fork)."""
        payload = self.location.read_bytes(self._path(table, version))
        if payload is None:
            if version == 0:
                return None
            raise ConfigError(
                f"branch {self.name}: table {table} has no version {version}",
                hint="the branch was deleted or vacuumed while this reader had it open",
            )
        record = pq.read_table(pa.BufferReader(payload))
        metadata = record.schema.metadata or {}
        schema = pa.ipc.read_schema(pa.BufferReader(metadata[_SCHEMA_KEY]))
        return record.replace_schema_metadata(None), schema, int(metadata.get(_SEQ_KEY, b"0"))

    def copy_version(self, other: BranchStore, table: str, version: int) -> None:
        """Start this branch's version 0 of ``table`` from another branch's version (a small file list)."""
        found = other.read_version(table, version)
        if found is not None:
            files, schema, _ = found
            self.write_version(table, 0, files, schema, 0)

    def all_paths(self) -> dict[str, set[str]]:
        """Every file any version of this branch references, per table (what vacuum must keep)."""
        paths: dict[str, set[str]] = {}
        for info in self.location.list_files(f"{self.folder}/tables"):
            table = info.path.rstrip("/").split("/")[-2]
            payload = self.location.read_bytes(f"{self.folder}/tables/{table}/{info.base_name}")
            if payload is None or not info.base_name.endswith(".parquet"):
                continue
            column = pq.read_table(pa.BufferReader(payload), columns=["path"]).column("path")
            paths.setdefault(table, set()).update(str(p) for p in column.to_pylist())
        return paths

    def delete(self) -> None:
        """Delete the record first (the branch is gone), then its log and file lists."""
        self.location.delete_file(f"{self.folder}/branch.json")
        with contextlib.suppress(FileNotFoundError):
            self.location.fs.delete_dir(self.location.fs_path(self.folder))


def list_branches(location: LakeLocation) -> list[BranchRecord]:
    records = []
    for info in location.list_files(BRANCHES_DIR):
        if info.base_name == "branch.json" and info.path.rstrip("/").split("/")[-3] == BRANCHES_DIR.strip("/"):
            name = info.path.rstrip("/").split("/")[-2]
            store = BranchStore(location, name)
            try:
                records.append(store.record())
            except ConfigError:
                continue  # deleted in the meantime
    return sorted(records, key=lambda r: r.created_at)


# --- file lists of main's versions ---------------------------------------------------------------------


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
