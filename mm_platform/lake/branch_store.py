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
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mm_platform.errors import ConfigError
from mm_platform.lake.branch_files import FILE_SCHEMA
from mm_platform.lake.storage import LakeLocation

BRANCHES_DIR = "_branches"
MAIN = "main"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SEQ_KEY, _SCHEMA_KEY = b"mmp.publish_seq", b"mmp.table_schema"


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
