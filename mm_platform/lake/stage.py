"""Stage a partition: write its rows invisibly beside each table and record what a publish must commit.

A stage is a manifest (``_stages/<stage_id>.json``) listing, per table, the Parquet files to add and the
files to remove (rows it replaces). Nothing is visible to readers until the publish protocol commits it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from mm_platform.lake.files import FileAdd, FileRemove, read_parquet_file, rows_without
from mm_platform.lake.operations import Operation, Write, operation_from, restored_versions
from mm_platform.lake.parallel import map_parallel
from mm_platform.lake.storage import LakeLocation

STAGES_DIR = "_stages"


@dataclass(frozen=True)
class RowFilter:
    """Rows whose ``column`` holds one of ``values``: what a write replaces in the published table."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class TableWrite:
    """New rows for one table, and which published rows they replace."""

    rows: pa.Table
    replace: tuple[RowFilter, ...] = ()


@dataclass(frozen=True)
class StagedTable:
    """What one table's commit will contain."""

    table: str
    base_version: int
    """The table version the removes were computed against."""
    adds: tuple[FileAdd, ...]
    removes: tuple[FileRemove, ...]
    rows_added: int
    schema_ipc: str
    """The table schema after this commit (base64 Arrow IPC), evolved if the rows brought new columns."""
    replace: tuple[RowFilter, ...] = ()
    new_row_files: tuple[str, ...] = ()
    """The added files that hold the stage's new rows (the rest re-write surviving published rows)."""

    @property
    def schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.schema_ipc)))


@dataclass(frozen=True)
class Stage:
    """A partition's staged change across tables, or a rollback's target versions."""

    stage_id: str
    partition: str
    operation: Operation = field(default_factory=Write)
    """What the publish does: write the staged files (``Write`` and its kinds) or ``Restore`` versions."""
    tables: Mapping[str, StagedTable] = field(default_factory=dict)
    run_id: str = ""
    code_version: str = ""
    message: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    audit: Mapping[str, Any] = field(default_factory=dict)
    """Audit fields this stage adds to its publish events (a merge: source branch, base, conflicts)."""

    @property
    def kind(self) -> str:
        """The operation's persisted name (log events and Delta commit metadata carry it)."""
        return self.operation.kind

    def table_names(self) -> list[str]:
        """Every table the publish covers: those with staged files and those it restores."""
        return sorted(set(self.tables) | set(restored_versions(self.operation)))

    def commits_to(self, name: str) -> bool:
        """Whether the publish commits to ``name``: one the stage neither writes to nor replaces rows of keeps its
        version (an empty commit per batch would only lengthen its log), still checked for freshness and pinned."""
        staged = self.tables.get(name)
        return staged is None or bool(staged.adds or staged.removes) or name in restored_versions(self.operation)

    def row_counts(self) -> dict[str, int]:
        return {name: staged.rows_added for name, staged in self.tables.items()}

    def to_json(self) -> dict[str, Any]:
        """The manifest as it has always been written: ``kind`` and ``restore_versions``, not a type."""
        doc = asdict(self)
        del doc["operation"]
        return {
            "stage_id": doc.pop("stage_id"),
            "partition": doc.pop("partition"),
            "kind": self.kind,
            "tables": doc.pop("tables"),
            "restore_versions": dict(restored_versions(self.operation)),
            **doc,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Stage:
        tables = {}
        for name, raw in doc["tables"].items():
            tables[name] = StagedTable(
                table=raw["table"],
                base_version=raw["base_version"],
                adds=tuple(FileAdd(**a) for a in raw["adds"]),
                removes=tuple(FileRemove(**r) for r in raw["removes"]),
                rows_added=raw["rows_added"],
                schema_ipc=raw["schema_ipc"],
                replace=tuple(RowFilter(r["column"], tuple(r["values"])) for r in raw.get("replace", ())),
                new_row_files=tuple(raw.get("new_row_files", ())),
            )
        return cls(
            stage_id=doc["stage_id"],
            partition=doc["partition"],
            operation=operation_from(doc["kind"], doc.get("restore_versions")),
            tables=tables,
            run_id=doc.get("run_id", ""),
            code_version=doc.get("code_version", ""),
            message=doc.get("message", ""),
            created_at=doc["created_at"],
            audit=dict(doc.get("audit", {})),
        )


def save_stage(location: LakeLocation, stage: Stage) -> None:
    location.write_json(f"{STAGES_DIR}/{stage.stage_id}.json", stage.to_json())


def load_stage(location: LakeLocation, stage_id: str) -> Stage | None:
    doc = location.read_json(f"{STAGES_DIR}/{stage_id}.json")
    return None if doc is None else Stage.from_json(doc)


def schema_to_ipc(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _hash_array(digest: Any, array: pa.Array) -> None:
    """Hash an array's buffers in place (no serialisation); offset and length pin the slice they hold."""
    digest.update(f"{array.type}|{array.offset}|{len(array)}|".encode())
    for buffer in array.buffers():
        if buffer is not None:
            digest.update(memoryview(buffer))
    if pa.types.is_dictionary(array.type):
        _hash_array(digest, array.dictionary)


def hash_rows(digest: Any, rows: pa.Table) -> None:
    """Feed a table's content into a running digest."""
    for column in rows.columns:
        for chunk in column.chunks:
            _hash_array(digest, chunk)


def fingerprint(partition: str, writes: Mapping[str, TableWrite], kind: str = Write.kind) -> str:
    """A stage id that follows the content: the same rows for the same partition give the same id.

    Equal ids imply equal rows (buffers, offsets and lengths all hashed); differently chunked copies of the
    same rows may get different ids, which only costs a new stage, never a wrong no-op.
    """

    def table_digest(name: str) -> str:
        write = writes[name]
        digest = hashlib.sha256(f"\0{name}\0{write.rows.schema}\0".encode())
        for row_filter in write.replace:
            digest.update(f"{row_filter.column}={','.join(sorted(row_filter.values))};".encode())
        hash_rows(digest, write.rows)
        return digest.hexdigest()

    # Tables hash side by side: hashlib releases the GIL on large buffers.
    parts = map_parallel(table_digest, sorted(writes))
    digest = hashlib.sha256(f"{kind}\0{partition}".encode())
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()[:24]


def _may_contain(low: Any, high: Any, sorted_values: Sequence[str]) -> bool:
    if low is None or high is None:
        return True
    index = bisect.bisect_left(sorted_values, str(low))
    return index < len(sorted_values) and sorted_values[index] <= str(high)


def file_actions(dt: DeltaTable) -> list[dict[str, Any]]:
    """The table version's files with their statistics (flattened: ``min.<column>``, ``max.<column>``)."""
    return pa.table(dt.get_add_actions(flatten=True)).to_pylist()


def replaced_rows(
    location: LakeLocation, table_name: str, dt: DeltaTable, filters: Sequence[RowFilter]
) -> tuple[list[FileRemove], list[pa.Table]]:
    """Files holding rows the filters replace: whole files removed, partly matching files rewritten.

    File statistics prune the search, so the cost follows the replaced rows, not the table size.
    Returns the removes and, for partly matching files, the surviving rows to write again.
    """
    if not filters:
        return [], []
    return replaced_rows_in(location, table_name, file_actions(dt), filters)


def replaced_rows_in(
    location: LakeLocation,
    table_name: str,
    actions: Sequence[Mapping[str, Any]],
    filters: Sequence[RowFilter],
    *,
    survivors: bool = True,
) -> tuple[list[FileRemove], list[pa.Table]]:
    """:func:`replaced_rows` over a version's :func:`file_actions` (reads files only: any thread may run it).

    A candidate file is first read in its filter columns alone; only a file that is hit and keeps other rows
    is read whole (``survivors=False``: never, for a caller that needs the removes only).
    """
    sorted_filters = [(f.column, sorted(f.values), pa.array(f.values, pa.string())) for f in filters]
    removes: list[FileRemove] = []
    kept: list[pa.Table] = []
    for action in actions:
        candidates = [
            (column, values, value_set)
            for column, values, value_set in sorted_filters
            if values and _may_contain(action.get(f"min.{column}"), action.get(f"max.{column}"), values)
        ]
        if not candidates:
            continue
        whole = any(
            action.get(f"min.{column}") is not None
            and action.get(f"min.{column}") == action.get(f"max.{column}")
            and str(action.get(f"min.{column}")) in set(values)
            for column, values, _ in candidates
        )
        if whole:
            removes.append(FileRemove(path=action["path"], size=action.get("size_bytes")))
            continue
        columns = list(dict.fromkeys(column for column, _, _ in candidates))
        keys = read_parquet_file(location, table_name, action["path"], columns=columns)
        mask = None
        for column, _, value_set in candidates:
            hit = pc.is_in(keys.column(column).cast(pa.string()), value_set=value_set)
            mask = hit if mask is None else pc.or_(mask, hit)
        hits = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
        if hits == 0:
            continue
        removes.append(FileRemove(path=action["path"], size=action.get("size_bytes")))
        if survivors and hits < keys.num_rows:
            kept.append(rows_without(read_parquet_file(location, table_name, action["path"]), mask))
    return removes, kept
